import importlib.util
import os

from hypothesis import HealthCheck, settings


def _choose_cuda_mode() -> None:
    """Let the ``"cuda"`` backend join every test run over ``helpers.BACKENDS``: on the GPU
    where there is one, else in numba's simulator, a mode numba reads when ``numba.cuda``
    is first imported (so here, before any test module). A mode set by the caller stays."""
    if "NUMBA_ENABLE_CUDASIM" in os.environ or importlib.util.find_spec("numba_cuda") is None:
        return
    if not any(os.path.exists(device) for device in ("/dev/nvidiactl", "/dev/nvidia0")):
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


_choose_cuda_mode()

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
