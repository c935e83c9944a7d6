"""Voicefleet's Kubernetes operator: turns TTSService resources into TTS server workloads."""

GROUP = "voicefleet.io"
VERSION = "v1alpha1"
KIND = "TTSService"
PLURAL = "ttsservices"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "voicefleet-operator"
