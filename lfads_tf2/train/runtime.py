"""TensorFlow's runtime: a quiet import, thread pools, graph optimization and the device.

Each of these must happen before TensorFlow runs its first op (the pools and part of
the graph optimizer are read once, when the eager context starts), so run_lfads and
lfads_tune call them first, after the flags and the data have been checked.
"""
import os
import sys

def _import_tensorflow_without_keras():
    """`import tensorflow`, without the import of Keras that TensorFlow does on loading.

    TensorFlow imports Keras 3 eagerly when it loads (to register Keras's optimizers
    for SavedModels), and Keras imports scikit-learn and SciPy: 40 % of the import,
    5 of 12 seconds on a busy 2-core machine. LFADS uses no Keras. With
    TF_USE_LEGACY_KERAS set, TensorFlow tries the legacy tf_keras package instead and
    passes quietly when it is not installed. The variable is set for the import only
    (not for child processes); `tf.keras` still loads Keras 3 on first use, as
    TensorFlow reads the variable again then. Nothing changes when tf_keras is
    installed (it would be loaded instead), when the variable is set already or when
    Keras is loaded already.
    """
    import importlib.util
    skip = ("TF_USE_LEGACY_KERAS" not in os.environ and "keras" not in sys.modules
            and importlib.util.find_spec("tf_keras") is None)
    if skip:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    try:
        import tensorflow as tf
    finally:
        if skip:
            del os.environ["TF_USE_LEGACY_KERAS"]
    return tf


def quiet_tensorflow_import():
    """Imports TensorFlow with its C++ start-up chatter silenced; returns the module.

    TensorFlow prints CUDA probing, oneDNN and CPU-feature notes straight to file
    descriptor 2 while it loads (before its own log level applies), which buries the
    program's one-line messages. stderr is pointed at /dev/null for the import and
    the first device query only; Python exceptions are unaffected (they are printed
    after the descriptor is restored).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        tf = _import_tensorflow_without_keras()
        tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


def configure_threads(intra_op_threads, inter_op_threads):
    """Sets TensorFlow's thread pools and its graph optimization
    (`configure_graph_optimizer`); only possible before TensorFlow runs an op."""
    tf = quiet_tensorflow_import()
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # already running (e.g. a second run in one process): keep the pools
    configure_graph_optimizer(tf)


def configure_graph_optimizer(tf):
    """Graph optimization (grappler) with one round of the passes that change LFADS's
    graphs. The layout pass is turned off at any time (public option, read when a
    function is first called); the round count, memory and tfg passes only before
    TensorFlow runs an op (the context's start-up config), else they are left alone.

    Measured on the README's first example (TF_CPP_VMODULE=meta_optimizer=1): the
    training step's first call spent 1.6 s in grappler, a third of the start-up after
    the imports. Its second round of passes changed 33 of 2,800 nodes; the tfg, memory
    and layout passes changed none (no convolutions, no GPU) but took 0.5 s. Without
    them the first call is 0.8 s shorter and the step as fast
    (scripts/benchmark_startup.py, scripts/benchmark_train.py; see the README).
    """
    tf.config.optimizer.set_experimental_options({"layout_optimizer": False})
    try:
        # no public API for these three: the eager context's base ConfigProto, read
        # when the context starts
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
        from tensorflow.python.eager import context
        ctx = context.context()
        if ctx._context_handle is not None:
            return  # already started: leave it
        config = config_pb2.ConfigProto()
        if ctx._config is not None:
            config.CopyFrom(ctx._config)
        rewrite = config.graph_options.rewrite_options
        rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
        rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        rewrite.disable_tfg_optimizer = True
        ctx._config = config
    except (ImportError, AttributeError):
        pass  # another TensorFlow's internals: its default optimization, only slower


def select_device(device, allow_gpu_growth):
    """Returns the tf.device string to use, falling back to the CPU without a GPU."""
    tf = quiet_tensorflow_import()
    tf.config.set_soft_device_placement(True)
    gpus = tf.config.list_physical_devices("GPU")
    if allow_gpu_growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    dev = device.lower().lstrip("/")
    if dev.startswith("device:"):
        dev = dev[len("device:"):]
    if dev.startswith("gpu") and not gpus:
        print("note: --device=%s but no GPU is visible; running on the CPU." % device)
        return "/cpu:0"
    return "/" + dev
