"""EmotiVoice (netease-youdao): prompt-controlled emotion, 2000+ speakers, Mandarin and English, 16 kHz."""
