"""The model's parts (no I/O, no flags): layers, recurrences, encoders, generator,
read-in/read-out, observation models, costs, input regularisers and random draws.
The top-level lfads.py wires them into the LFADS forward pass."""
