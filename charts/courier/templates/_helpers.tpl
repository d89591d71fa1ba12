{{- /* `<release>-courier`, or the release's name alone when it already says courier. */ -}}
{{- define "courier.fullname" -}}
{{- if contains "courier" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-courier" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "courier.operator" -}}{{ include "courier.fullname" . }}-operator{{- end -}}
{{- define "courier.coordinator" -}}{{ include "courier.fullname" . }}-coordinator{{- end -}}
{{- define "courier.tlsSecret" -}}
{{- .Values.coordinator.tlsSecretName | default (printf "%s-tls" (include "courier.coordinator" .)) -}}
{{- end -}}

{{- define "courier.selectorLabels" -}}
app.kubernetes.io/name: courier-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "courier.labels" -}}
{{ include "courier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "courier.image" -}}
{{ .image.repository }}:{{ .image.tag | default .appVersion }}
{{- end -}}
