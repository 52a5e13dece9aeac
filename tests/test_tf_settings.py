"""TensorFlow's settings for a run: thread pools and graph optimization, set before
TensorFlow starts (so checked in a fresh process)."""
import json
import os
import subprocess
import sys

from lfads_tf2.train import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import json
from lfads_tf2.train import runtime
runtime.configure_threads(1, 0)
import tensorflow as tf
from tensorflow.python.eager import context
(tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()  # the context has started
rewrite = context.context().config.graph_options.rewrite_options
print("RESULT " + json.dumps(dict(
    iterations=rewrite.meta_optimizer_iterations, memory=rewrite.memory_optimization,
    tfg_off=rewrite.disable_tfg_optimizer, layout=rewrite.layout_optimizer,
    intra=tf.config.threading.get_intra_op_parallelism_threads(),
    options=tf.config.optimizer.get_experimental_options())))
"""


def test_run_configures_threads_and_one_round_of_graph_optimization():
    from tensorflow.core.protobuf import rewriter_config_pb2 as rc
    # this checkout first on PYTHONPATH, as conftest.py puts it first for the tests
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                         text=True, check=True, env=env)
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
    got = json.loads(line[len("RESULT "):])
    assert got["iterations"] == rc.RewriterConfig.ONE
    assert got["memory"] == rc.RewriterConfig.NO_MEM_OPT
    assert got["tfg_off"] is True
    assert got["layout"] == rc.RewriterConfig.OFF
    assert got["options"]["layout_optimizer"] is False
    assert got["intra"] == 1
    # the passes that do change LFADS's graphs are left on
    assert got["options"].get("constant_folding", True) is not False
    assert got["options"].get("arithmetic_optimization", True) is not False


def test_graph_optimizer_leaves_a_started_context_alone():
    import tensorflow as tf
    from tensorflow.python.eager import context
    tf.constant(1.0).numpy()  # started in this test process
    before = context.context()._config
    runtime.configure_graph_optimizer(tf)
    assert context.context()._config is before
    tf.config.optimizer.set_experimental_options({"layout_optimizer": None})
