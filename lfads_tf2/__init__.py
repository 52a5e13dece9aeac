"""The parts of the LFADS model (lfads.py wires them together); see DESIGN.md."""
