{{- define "verdict.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "verdict.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "verdict.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verdict.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "verdict.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "verdict.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "verdict.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "verdict.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "verdict.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The configuration: .Values.config with state.redis from .Values.redis.
*/}}
{{- define "verdict.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- with .Values.redis }}
{{- if .url }}
{{- if regexMatch "^rediss?://[^/]*:[^/]*@" .url }}
{{- fail "redis.url: give the password in redis.passwordSecret, not in the URL" }}
{{- end }}
{{- $r := dict "url" .url }}
{{- if .passwordSecret.name }}
{{- $_ := set $r "password_file" (printf "/etc/verdict/redis/%s" .passwordSecret.key) }}
{{- end }}
{{- if .caSecret.name }}
{{- $_ := set $r "tls" (dict "ca_file" (printf "/etc/verdict/redis-ca/%s" .caSecret.key)) }}
{{- end }}
{{- if .keyPrefix }}
{{- $_ := set $r "key_prefix" .keyPrefix }}
{{- end }}
{{- if .failOpen }}
{{- $_ := set $r "fail_open" .failOpen }}
{{- end }}
{{- $_ := set $cfg "state" (dict "redis" $r) }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
