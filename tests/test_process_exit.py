"""A process that ends without the interpreter's teardown still does what that teardown would
have done that matters: exit handlers, finalizers, buffered output, the exit status, and a
running non-daemon thread is waited for."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ENDS = """
import atexit, sys, tempfile, threading, time, weakref
from pathlib import Path
from llm_pipeline.process_exit import exit_without_teardown

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
holder = type("Holder", (), {{}})()
scratch = Path(tempfile.mkdtemp(dir=out))
weakref.finalize(holder, scratch.rmdir)
if {thread}:
    def late():
        time.sleep(0.5)
        (out / "thread").write_text("finished")
    threading.Thread(target=late).start()
sys.stdout.write("buffered, never flushed by hand")
exit_without_teardown(3)
"""


@pytest.mark.parametrize("thread", [False, True], ids=["alone", "with a thread"])
def test_exit_handlers_finalizers_output_and_status_survive_the_fast_exit(tmp_path, thread):
    code = textwrap.dedent(ENDS.format(thread=thread))
    ended = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert ended.returncode == 3, ended.stderr
    assert ended.stdout == "buffered, never flushed by hand"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not [path for path in tmp_path.iterdir() if path.is_dir()]  # the finalizer ran
    assert (tmp_path / "thread").exists() == thread
