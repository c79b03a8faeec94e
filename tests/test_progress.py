"""Progress lines on stderr: compile notices and slow stages, silent when quick."""

import time

from fp4ref import _progress


def test_a_slow_stage_says_so_and_a_quick_one_does_not(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "AFTER", 0.05)
    with _progress.stage("fp4ref test: quick"):
        pass
    with _progress.stage("fp4ref test: slow"):
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "fp4ref test: slow..."
    assert err[1].startswith("fp4ref test: slow: done (") and len(err) == 2


def test_silenced_by_the_environment(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "AFTER", 0.0)
    monkeypatch.setenv("FP4REF_PROGRESS", "0")
    with _progress.stage("fp4ref test: slow"):
        time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_a_numba_compile_is_announced(capsys, monkeypatch):
    import numba

    monkeypatch.setattr(_progress, "AFTER", 0.0)
    monkeypatch.setattr(_progress, "QUIET", 0.05)
    _progress.install()

    @numba.njit
    def fresh(a):  # a new function: nothing cached
        return a * 3 + 1

    assert fresh(2) == 7
    time.sleep(0.5)  # the closing line comes once no compile has run for QUIET seconds
    err = capsys.readouterr().err.splitlines()
    assert err[0] == _progress.MESSAGE
    assert err[1].startswith("fp4ref: kernels ready (")


def test_the_cuda_low_occupancy_warning_is_silenced_and_no_other():
    import warnings

    from fp4ref import _device

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _device.quiet_launches()
        warnings.warn("Grid size 16 will likely result in GPU under-utilization due to low "
                      "occupancy.", RuntimeWarning, stacklevel=1)
        # as numba-cuda words it on the H200: wrapped in terminal highlight codes
        warnings.warn("\x1b[1mGrid size 1 will likely result in GPU under-utilization due to "
                      "low occupancy.\x1b[0m", RuntimeWarning, stacklevel=1)
        warnings.warn("Host array used in CUDA kernel will incur copy overhead",
                      RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "Host array used in CUDA kernel will incur copy overhead"]


def test_a_stage_closes_the_compile_notice_before_its_own_line(capsys, monkeypatch):
    import numba

    monkeypatch.setattr(_progress, "AFTER", 0.0)
    monkeypatch.setattr(_progress, "QUIET", 5.0)  # the period would stay open for 5 s
    _progress.install()

    @numba.njit
    def another(a):  # a new function: nothing cached
        return a - 1

    with _progress.stage("fp4ref test: stage"):
        assert another(2) == 1
        time.sleep(0.2)
    err = capsys.readouterr().err.splitlines()
    ready = [i for i, line in enumerate(err) if line.startswith("fp4ref: kernels ready")]
    done = [i for i, line in enumerate(err) if line.startswith("fp4ref test: stage: done")]
    assert len(ready) == 1 and len(done) == 1 and ready[0] < done[0], err
