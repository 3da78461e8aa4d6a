"""The Triton program of :mod:`recammaster.models.norm_rotation`, one token's row a program. Imported when the kernel
is first launched (Triton comes with torch's CUDA builds); :func:`norm_rotation._kernel` compiles it."""

import triton.language as tl


def norm_rotate(source, weight, cos, sin, output, positions, eps, width: tl.constexpr, head_dim: tl.constexpr,
                block: tl.constexpr):  # fmt: skip
    """``source`` (rows, width) -> ``output``: RMS norm of the row, scaled by ``weight``, each head's channel pairs
    rotated by the angles of position ``row % positions`` (``cos``, ``sin``: (positions, head_dim), each angle
    twice). ``block``: ``width`` rounded up to a power of two."""
    row = tl.program_id(0)
    channels = tl.arange(0, block)
    inside = channels < width
    dtype = output.dtype.element_ty
    values = tl.load(source + row * width + channels, mask=inside, other=0.0).to(tl.float32)
    inverse_rms = 1.0 / tl.sqrt(tl.sum(values * values, axis=0) / width + eps)
    scale = tl.load(weight + channels, mask=inside, other=0.0).to(tl.float32)
    normalised = (values * inverse_rms * scale).to(dtype).to(tl.float32)
    even, odd = tl.split(tl.reshape(normalised, (block // 2, 2)))
    pairs = tl.arange(0, block // 2)
    angle = (row % positions) * head_dim + 2 * (pairs % (head_dim // 2))
    cosine = tl.load(cos + angle, mask=pairs < width // 2, other=0.0).to(tl.float32)
    sine = tl.load(sin + angle + 1, mask=pairs < width // 2, other=0.0).to(tl.float32)
    rotated = tl.reshape(tl.join(even * cosine - odd * sine, even * sine + odd * cosine), (block,))
    tl.store(output + row * width + channels, rotated.to(dtype), mask=inside)
