{{- define "voicefleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voicefleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "voicefleet.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "voicefleet.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "voicefleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voicefleet.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "voicefleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{ include "voicefleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: voicefleet
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{- define "voicefleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voicefleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "voicefleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- /*
Rules for what the operator does inside a namespace it serves. Read from operator/tts_operator/handlers.py
and kube.py: kopf watches TTSServices and keeps its progress in their annotations; children are applied
with server-side apply (PATCH), pruned with DELETE and watched by label; pods are only indexed (read);
Events are POSTed. ScaledObjects are for the KEDA integration.
*/}}
{{- define "voicefleet.namespacedRules" -}}
- apiGroups: ["voicefleet.io"]
  resources: ["ttsservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["voicefleet.io"]
  resources: ["ttsservices/status"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- /* Read-only: the HPAs KEDA creates, for scaling decisions in the TTSService status. */}}
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- /* Cluster-scoped reads kopf needs to discover its resources and the namespaces it serves. */}}
{{- define "voicefleet.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{- /* More than one operator replica: kopf peering elects the active one. */}}
{{- define "voicefleet.peered" -}}
{{- if gt (int .Values.operator.replicas) 1 }}true{{ end }}
{{- end }}

{{- define "voicefleet.peeringName" -}}
{{- default (include "voicefleet.fullname" .) .Values.operator.peering.name }}
{{- end }}
