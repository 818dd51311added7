{{- define "jeex-operator.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "jeex-operator.labels" -}}
app.kubernetes.io/name: jeex-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "jeex-operator.selector" -}}
app.kubernetes.io/name: jeex-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
