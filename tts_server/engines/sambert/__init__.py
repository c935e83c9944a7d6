"""ModelScope Sambert-HifiGAN (KAN-TTS): Mandarin, several voices with trained emotions, Python 3.10 only."""
