{{/* The chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; component names append -worker or -api. */}}
{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "worker"). */}}
{{- define "herald.componentLabels" -}}
{{ include "herald.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "herald.componentSelectorLabels" -}}
{{ include "herald.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the secret variables: existingSecret, else the chart-made one. */}}
{{- define "herald.secretName" -}}
{{- default (include "herald.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "herald.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The secret variables each Deployment gets as environment variables (HERALD_NATS_CREDS is a
file instead). Each gets only what it uses: the worker the provider credentials it sends
with and the DLR secret it signs report URLs with; the API the keys and webhook secrets it
checks requests with. A compromised API pod holds no provider token; a worker no API key.
*/}}
{{- define "herald.workerSecretEnvNames" -}}
HERALD_REDIS_URL HERALD_WHITE_TOKEN HERALD_GREY_TOKEN HERALD_SMS_PASSWORD HERALD_SMS_SMPP_PASSWORD HERALD_SMS_DLR_SECRET
{{- end }}
{{- define "herald.apiSecretEnvNames" -}}
HERALD_REDIS_URL HERALD_API_KEYS HERALD_ADMIN_KEYS HERALD_WHITE_APP_SECRET HERALD_WHITE_VERIFY_TOKEN HERALD_GREY_WEBHOOK_TOKEN HERALD_SMS_DLR_SECRET
{{- end }}

{{/*
Seconds in a Go duration made of whole h, m and s parts ("30s", "1m30s", "2h"); the schema
restricts HERALD_SHUTDOWN_TIMEOUT to that form, since templates cannot call time.ParseDuration.
*/}}
{{- define "herald.durationSeconds" -}}
{{- $d := toString . }}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi }}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi }}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi }}
{{- add (mul $h 3600) (mul $m 60) $s }}
{{- end }}

{{/* The drain timeout plus the margin (and the API's preStop sleep, if any). */}}
{{- define "herald.terminationGracePeriodSeconds" -}}
{{- $drain := include "herald.durationSeconds" (default "30s" .root.Values.config.HERALD_SHUTDOWN_TIMEOUT) | atoi }}
{{- add $drain .root.Values.terminationGraceMarginSeconds (default 0 .preStop) }}
{{- end }}

{{/* The container port, taken from HERALD_HTTP_ADDR (":8080" -> 8080). */}}
{{- define "herald.httpPort" -}}
{{- regexFind "[0-9]+$" (toString (default ":8080" .Values.config.HERALD_HTTP_ADDR)) | default "8080" }}
{{- end }}

{{/* The ops port (health, metrics), taken from HERALD_OPS_ADDR (":9090" -> 9090). */}}
{{- define "herald.opsPort" -}}
{{- regexFind "[0-9]+$" (toString (default ":9090" .Values.config.HERALD_OPS_ADDR)) | default "9090" }}
{{- end }}
