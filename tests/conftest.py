"""Test-wide setup that must happen before any test module imports torch."""

import tts_server.engines.baker  # noqa: F401  (sets OMP_WAIT_POLICY before torch's OpenMP starts)
