{{/*
Monitoring (monitoring.* values; README "Monitoring"). Both monitors give the job
jarvice-cache-pull (jobLabel: the pods' and the Service's app.kubernetes.io/name), which the
alerts' up{job=...} expects, and a `node` label from the pod's node, which the alerts name.
*/}}
{{- define "jcp.monitoring.labels" -}}
{{ include "jcp.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "jcp.monitoring.endpoint" -}}
port: http
path: /metrics
interval: {{ .interval }}
scrapeTimeout: {{ .scrapeTimeout }}
relabelings:
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
    action: replace
{{- end -}}
