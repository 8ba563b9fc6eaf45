{{- define "vo.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include "vo.selector" (list . "orchestrator") */}}
{{- define "vo.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "vo.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "vo.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/voice-orchestrator/%s:%s" $root.Values.image.registry (index . 1) (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{- define "vo.secretName" -}}
{{- default (printf "%s-secrets" (include "vo.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "vo.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "vo.fullname" .) -}}
{{- else -}}
{{- required "redis.externalHost is required when redis.enabled is false" .Values.redis.externalHost -}}
{{- end -}}
{{- end -}}

{{/* REDIS_PASSWORD from the Secret, then a URL built from it (Kubernetes expands $(VAR)). */}}
{{- define "vo.redisEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "vo.secretName" . }}
      key: redis-password
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/0" (include "vo.redisHost" .) .Values.redis.port | quote }}
{{- end -}}
