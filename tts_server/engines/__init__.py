"""TTS engines behind one small interface (see base.Engine) and a registry to create them by name."""
