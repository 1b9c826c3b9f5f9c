{{- define "jcp.name" -}}jarvice-cache-pull{{- end -}}

{{- define "jcp.labels" -}}
app.kubernetes.io/name: {{ include "jcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: image-cache
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/*
The runtime as data: jcp's --runtime kind, its endpoint as jcp sees it, and the host directories
mounted (socket directory and image disk). Every hostPath is DirectoryOrCreate, so a node without
that runtime still starts the pod. Sockets are mounted read-only: connecting needs no write access.
  containerd, crio: the socket's directory at the same path (runtimeEndpoint may move it, e.g. k3s).
  docker: /var/run at /host/var/run (Docker's socket has no directory of its own), and --host-root
          so that jcp warns when the kubelet uses containerd or CRI-O instead.
  auto:   the host's /run at /run: every socket jcp probes; no disk guard unless diskHostPath.
*/}}
{{- define "jcp.runtime" -}}
{{- $v := .Values -}}
{{- $r := $v.runtime -}}
{{- $rt := dict -}}
{{- if eq $r "containerd" -}}
{{- $rt = dict "kind" "cri" "endpoint" "unix:///run/containerd/containerd.sock" "disk" "/var/lib/containerd" -}}
{{- else if eq $r "crio" -}}
{{- $rt = dict "kind" "cri" "endpoint" "unix:///run/crio/crio.sock" "disk" "/var/lib/containers/storage" -}}
{{- else if eq $r "docker" -}}
{{- $rt = dict "kind" "docker" "endpoint" "unix:///host/var/run/docker.sock" "dir" "/var/run" "mount" "/host/var/run" "disk" "/var/lib/docker" "hostRoot" "/host" -}}
{{- else if eq $r "auto" -}}
{{- $rt = dict "kind" "auto" "endpoint" "" "dir" "/run" "mount" "/run" "disk" "" -}}
{{- else -}}
{{- fail (printf "runtime must be containerd, crio, docker or auto, not %q" $r) -}}
{{- end -}}
{{- if $v.runtimeEndpoint -}}
{{- if ne $rt.kind "cri" -}}
{{- fail "runtimeEndpoint is for runtime containerd or crio (auto: use kubeletRuntimeEndpoint)" -}}
{{- end -}}
{{- if not (hasPrefix "unix:///" $v.runtimeEndpoint) -}}
{{- fail (printf "runtimeEndpoint must be unix:///path/to/socket, not %q" $v.runtimeEndpoint) -}}
{{- end -}}
{{- $_ := set $rt "endpoint" $v.runtimeEndpoint -}}
{{- end -}}
{{- if eq $rt.kind "cri" -}}
{{- $dir := dir (trimPrefix "unix://" $rt.endpoint) -}}
{{- $_ := set $rt "dir" $dir -}}
{{- $_ := set $rt "mount" $dir -}}
{{- end -}}
{{- if $v.diskHostPath -}}
{{- $_ := set $rt "disk" $v.diskHostPath -}}
{{- end -}}
{{- toJson $rt -}}
{{- end -}}

{{/*
Seconds as jcp's plain decimal (300, 2.5): Helm reads numbers as float64 and would print a large
one from a values file as 1e+06, which jcp rightly refuses.
*/}}
{{- define "jcp.seconds" -}}
{{- $f := float64 . -}}
{{- if eq $f (floor $f) -}}{{ int64 $f }}{{- else -}}{{ $f }}{{- end -}}
{{- end -}}

{{/*
"true" when jcp talks to the API about its node: the warm signal (nodeLifecycle), or an image
entry with a nodeSelector or matchExpressions (jcp reads and watches its node's labels); "" if not.
*/}}
{{- define "jcp.nodeApi" -}}
{{- $uses := .Values.nodeLifecycle.enabled -}}
{{- range .Values.images -}}
{{- if and (kindIs "map" .) (or (hasKey . "nodeSelector") (hasKey . "matchExpressions")) -}}
{{- $uses = true -}}
{{- end -}}
{{- end -}}
{{- if $uses -}}true{{- end -}}
{{- end -}}
