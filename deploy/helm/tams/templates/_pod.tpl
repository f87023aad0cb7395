{{/*
One service's container. Call with (dict "root" $ "name" "gateway"), and "allInOne" true in
the SQLite trial pod.
The port is named after the service, so Services and probes find it the same way whether the
service has its own pod or shares the SQLite trial pod. In that pod only the gateway has a
readiness probe: a pod is ready only when all its containers are, and the API (the
gateway's Service) must not go away because, say, analytics or segments' S3 check is not
ready. Their /ready still answers, and their metrics feed the alerts.
*/}}
{{- define "tams.container" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values $name -}}
{{- $probes := $root.Values.probes -}}
- name: {{ $name }}
  image: {{ include "tams.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["python", "-m", "tams_{{ $name }}"]
  ports:
    - name: {{ $name }}
      containerPort: {{ include "tams.port" . }}
      protocol: TCP
    {{- if eq $name "gateway" }}
    - name: replies
      containerPort: {{ include "tams.replyPort" $root }}
      protocol: TCP
    {{- end }}
  env:
    {{- include "tams.env" . | nindent 4 }}
  {{- with include "tams.envFrom" . }}
  envFrom:
    {{- . | nindent 4 }}
  {{- end }}
  startupProbe:
    httpGet:
      path: /health
      port: {{ $name }}
    periodSeconds: {{ $probes.startup.periodSeconds }}
    timeoutSeconds: {{ $probes.startup.timeoutSeconds }}
    failureThreshold: {{ $probes.startup.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /health
      port: {{ $name }}
    periodSeconds: {{ $probes.liveness.periodSeconds }}
    timeoutSeconds: {{ $probes.liveness.timeoutSeconds }}
    failureThreshold: {{ $probes.liveness.failureThreshold }}
  {{- if or (not .allInOne) (eq $name "gateway") }}
  readinessProbe:
    httpGet:
      path: /ready
      port: {{ $name }}
    periodSeconds: {{ $probes.readiness.periodSeconds }}
    timeoutSeconds: {{ $probes.readiness.timeoutSeconds }}
    failureThreshold: {{ $probes.readiness.failureThreshold }}
  {{- end }}
  {{- if and (eq $name "gateway") (gt (int $svc.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ int $svc.preStopSleepSeconds }}"]
  {{- end }}
  {{- with $svc.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: data
      mountPath: /data
{{- end -}}

{{/*
What every pod of the release shares. Call with (dict "root" $ "name" <service or "">);
a service's own nodeSelector, tolerations and affinity replace the global ones.
*/}}
{{- define "tams.podCommon" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := dict -}}
{{- if .name }}{{ $svc = index $v .name }}{{ end -}}
serviceAccountName: {{ include "tams.serviceAccountName" $root }}
automountServiceAccountToken: false
# Service links would inject variables such as TAMS_GATEWAY_PORT=tcp://10.0.0.1:80 (from the
# Service "tams-gateway") that collide with the services' own TAMS_* settings.
enableServiceLinks: false
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $v.nodeSelector $svc.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $v.tolerations $svc.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $v.affinity $svc.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ $v.topologySpread.maxSkew }}
    topologyKey: {{ $v.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "tams.selectorLabels" (dict "root" $root "component" (include "tams.podComponent" .)) | nindent 8 }}
    matchLabelKeys: ["pod-template-hash"]
{{- end }}
{{- end -}}

{{/* The pod's annotations and extra labels (global, then the service's). */}}
{{- define "tams.podMeta" -}}
{{- $v := .root.Values -}}
{{- $annotations := dict -}}
{{- $labels := dict -}}
{{- $annotations = merge $annotations (deepCopy $v.podAnnotations) -}}
{{- $labels = merge $labels (deepCopy $v.podLabels) -}}
{{- range .names -}}
{{- $svc := index $v . -}}
{{- $annotations = mergeOverwrite $annotations (deepCopy $svc.podAnnotations) -}}
{{- $labels = mergeOverwrite $labels (deepCopy $svc.podLabels) -}}
{{- end -}}
labels:
  {{- include "tams.selectorLabels" (dict "root" .root "component" .component) | nindent 2 }}
  {{- with $labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
