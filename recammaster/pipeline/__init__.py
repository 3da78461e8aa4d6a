"""Re-rendering: the ReCamMaster pipeline and its sampler."""

from recammaster.pipeline.recammaster_pipeline import ReCamMasterPipeline, ReCamMasterPipelineOutput
from recammaster.pipeline.sampler import euler_sample, flow_match_sigmas

__all__ = ["ReCamMasterPipeline", "ReCamMasterPipelineOutput", "euler_sample", "flow_match_sigmas"]
