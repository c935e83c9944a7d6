"""Waveform post-processing (resampling, time-stretch) and encoding to the served formats."""
