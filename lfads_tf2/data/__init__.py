"""Data in: recordings (NWB, plain arrays) binned, chopped and aligned into LFADS's h5
data files, and the checks that run on every data file before any work is done."""
