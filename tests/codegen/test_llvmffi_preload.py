"""``llvmffi.preload`` and ``lib`` on several threads: ``lib`` never joins the preload
thread before it has started (threads compiling at once raised "cannot join thread before it
is started" on a fast Xeon)."""

from __future__ import annotations

import threading

import pytest

from codegen.native import llvmffi


@pytest.mark.skipif(not llvmffi.available(), reason="llvmlite's library is not loadable here")
def test_lib_on_another_thread_while_the_preload_thread_is_being_started(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_LLVM_FFI", "1")
    monkeypatch.setattr(llvmffi, "_lib", None)
    monkeypatch.setattr(llvmffi, "_failed", False)
    monkeypatch.setattr(llvmffi, "_preload_thread", None)
    starting, release = threading.Event(), threading.Event()
    real = threading.Thread
    preloader = real(target=llvmffi.preload)  # made before Thread is patched

    class SlowToStart(real):
        def start(self):  # preload's thread, held between its creation and its start
            starting.set()
            release.wait(10)
            super().start()

    monkeypatch.setattr(threading, "Thread", SlowToStart)
    preloader.start()
    try:
        assert starting.wait(10)
        handle = llvmffi.lib()  # joined the unstarted thread: RuntimeError
    finally:
        release.set()
        preloader.join(10)
    assert handle is not None
