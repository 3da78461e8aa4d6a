"""Training ReCamMaster: latent caching first (``recammaster train data-process``), then fitting."""

from recammaster.training.cache import (
    CachedClip,
    CacheError,
    CacheReport,
    cache_dataset,
    cache_path,
    find_cached_clip,
    read_cached_clip,
    read_empty_prompt,
)

__all__ = [
    "CacheError",
    "CacheReport",
    "CachedClip",
    "cache_dataset",
    "cache_path",
    "find_cached_clip",
    "read_cached_clip",
    "read_empty_prompt",
]
