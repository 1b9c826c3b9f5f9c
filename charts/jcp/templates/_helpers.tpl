{{- define "jcp.name" -}}jarvice-cache-pull{{- end -}}
{{- define "jcp.labels" -}}
app.kubernetes.io/name: {{ include "jcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: image-cache
{{- end -}}
{{- define "jcp.runtime" -}}
{{- $r := .Values.runtime -}}
{{- if eq $r "containerd" -}}
{{- dict "kind" "cri" "endpoint" "unix:///run/containerd/containerd.sock" "dir" "/run/containerd" "mount" "/run/containerd" "disk" "/var/lib/containerd" | toJson -}}
{{- else if eq $r "crio" -}}
{{- dict "kind" "cri" "endpoint" "unix:///run/crio/crio.sock" "dir" "/run/crio" "mount" "/run/crio" "disk" "/var/lib/containers/storage" | toJson -}}
{{- else if eq $r "docker" -}}
{{- dict "kind" "docker" "endpoint" "unix:///host/docker-run/docker.sock" "dir" "/var/run" "mount" "/host/docker-run" "disk" "/var/lib/docker" | toJson -}}
{{- else if eq $r "auto" -}}
{{- dict "kind" "auto" "endpoint" "" "dir" "/run" "mount" "/run" "disk" "" | toJson -}}
{{- else -}}
{{- fail (printf "runtime must be containerd, crio, docker or auto, not %q" $r) -}}
{{- end -}}
{{- end -}}
