"""Installs the LFADS modules and the `run_lfads`, `lfads_import_original` and `lfads_score`
commands."""
from setuptools import setup

setup(
    name="lfads-tf2",
    version="0.1.0",
    description="LFADS (Latent Factor Analysis via Dynamical Systems) on TensorFlow 2",
    python_requires=">=3.9",
    # The design fixes these four top-level modules; everything else lives in lfads_tf2,
    # so the installed distribution claims no other generic top-level names.
    py_modules=["run_lfads", "lfads", "distributions", "utils"],
    packages=["lfads_tf2", "synth_data"],
    package_data={"synth_data": ["trained_itb/*.npz", "*.sh"]},
    install_requires=[
        "tensorflow>=2.16",
        "numpy",
        "scipy",
        "h5py",
        "matplotlib",
        "tensorboard",
        "absl-py",
    ],
    # scikit-learn: the metric tests compare with the Neural Latents Benchmark's code, whose
    # evaluation module needs it (nlb-tools itself is installed with --no-deps, see README).
    extras_require={"test": ["pytest", "hypothesis", "scikit-learn"]},
    entry_points={"console_scripts": [
        "run_lfads=run_lfads:console_main",
        "lfads_import_original=lfads_tf2.import_original:console_main",
        "lfads_score=lfads_tf2.score_outputs:console_main",
    ]},
)
