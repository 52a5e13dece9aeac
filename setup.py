"""Installs the LFADS modules and commands (`run_lfads`, `lfads_import_original`, `lfads_score`,
the data converters `lfads_from_nwb`, `lfads_from_arrays`, `lfads_merge` and `lfads_align`,
the hyperparameter search `lfads_tune` and the ensembles of `lfads_ensemble`)."""
from setuptools import setup

setup(
    name="lfads-tf2",
    version="0.1.0",
    description="LFADS (Latent Factor Analysis via Dynamical Systems) on TensorFlow 2",
    python_requires=">=3.9",
    # The design fixes these four top-level modules; everything else lives in lfads_tf2,
    # so the installed distribution claims no other generic top-level names.
    py_modules=["run_lfads", "lfads", "distributions", "utils"],
    packages=["lfads_tf2", "lfads_tf2.data", "lfads_tf2.model", "lfads_tf2.train",
              "lfads_tf2.evaluate", "lfads_tf2.score", "lfads_tf2.search", "lfads_tf2.ensemble",
              "synth_data"],
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
    # pynwb (NWB import) is only needed by lfads_from_nwb; the tests need it too.
    # scikit-learn: the metric tests compare with the Neural Latents Benchmark's code, whose
    # evaluation module needs it (nlb-tools itself is installed with --no-deps, see README).
    # Ray Tune and PyYAML (the search space file) only for lfads_tune; the tests run it.
    extras_require={"nwb": ["pynwb"],
                    "tune": ["ray[tune]>=2.60", "pyyaml"],
                    "test": ["pytest", "hypothesis", "pynwb", "scikit-learn",
                             "ray[tune]>=2.60", "pyyaml"]},
    entry_points={"console_scripts": [
        "run_lfads=run_lfads:console_main",
        "lfads_import_original=lfads_tf2.train.import_original:console_main",
        "lfads_score=lfads_tf2.score.lfads_score:console_main",
        "lfads_from_nwb=lfads_tf2.data.nwb:console_main",
        "lfads_from_arrays=lfads_tf2.data.arrays:console_main",
        "lfads_merge=lfads_tf2.data.merge:console_main",
        "lfads_align=lfads_tf2.data.alignment:console_main",
        "lfads_tune=lfads_tf2.search.lfads_tune:console_main",
        "lfads_ensemble=lfads_tf2.ensemble.lfads_ensemble:console_main",
    ]},
)
