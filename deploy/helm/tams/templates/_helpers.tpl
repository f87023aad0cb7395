{{/*
Names, labels and the small facts every template shares.
*/}}

{{- define "tams.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; resources are "<fullname>-<component>". */}}
{{- define "tams.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tams.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The five services, in start-up order of importance. */}}
{{- define "tams.serviceNames" -}}
["gateway", "catalog", "segments", "webhooks", "analytics"]
{{- end -}}

{{/* The services that consume command topics: they scale up to the partition count. */}}
{{- define "tams.consumerNames" -}}
["catalog", "segments", "webhooks"]
{{- end -}}

{{- define "tams.sqlite" -}}
{{- if eq .Values.store.type "sqlite" }}true{{ end -}}
{{- end -}}

{{/* The pod component of a service: every service shares one pod in SQLite mode. */}}
{{- define "tams.podComponent" -}}
{{- if include "tams.sqlite" .root }}all-in-one{{ else }}{{ .name }}{{ end -}}
{{- end -}}

{{/*
Labels. Call with (dict "root" $ "component" "gateway").
*/}}
{{- define "tams.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tams.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tams.labels" -}}
{{ include "tams.selectorLabels" . }}
helm.sh/chart: {{ include "tams.chart" .root }}
app.kubernetes.io/part-of: tams
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Labels that every pod of this release carries (for NetworkPolicy peers). */}}
{{- define "tams.releasePodLabels" -}}
app.kubernetes.io/name: {{ include "tams.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tams.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tams.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image: digest wins, else the tag, else the chart's appVersion (never "latest"). */}}
{{- define "tams.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The port a service listens on. The gateway serves the API, /health, /ready and /metrics on
8000; the others serve /health, /ready and /metrics on 8080. In SQLite mode the five share one
pod (one network namespace), so each takes its own port.
*/}}
{{- define "tams.port" -}}
{{- if eq .name "gateway" -}}
8000
{{- else if include "tams.sqlite" .root -}}
{{- get (dict "catalog" "8081" "segments" "8082" "webhooks" "8083" "analytics" "8084") .name -}}
{{- else -}}
8080
{{- end -}}
{{- end -}}

{{/* The port a gateway takes the services' replies on (tams_runtime.replies). */}}
{{- define "tams.replyPort" -}}
9190
{{- end -}}

{{/* The Service port of a service (the gateway's is configurable). */}}
{{- define "tams.servicePort" -}}
{{- if eq .name "gateway" -}}
{{- .root.Values.gateway.service.port -}}
{{- else -}}
8080
{{- end -}}
{{- end -}}

{{- define "tams.kafkaInClusterName" -}}
{{- printf "%s-kafka" (include "tams.fullname" .) -}}
{{- end -}}

{{- define "tams.kafkaBootstrapServers" -}}
{{- if .Values.kafka.inCluster.enabled -}}
{{- printf "%s.%s.svc.%s:9092" (include "tams.kafkaInClusterName" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The gateway's public URL: the value, else the first ingress host. */}}
{{- define "tams.gatewayPublicUrl" -}}
{{- if .Values.gateway.publicUrl -}}
{{- .Values.gateway.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $host := (first .Values.ingress.hosts).host -}}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) $host -}}
{{- end -}}
{{- end -}}

{{/* An integer value as a string (values arrive as float64; avoid "1e+07"). */}}
{{- define "tams.int" -}}
{{- printf "%d" (int64 .) -}}
{{- end -}}

{{/* "true" when an optional value is given (not null, not an empty string). */}}
{{- define "tams.isSet" -}}
{{- if not (or (kindIs "invalid" .) (and (kindIs "string" .) (eq . ""))) }}true{{ end -}}
{{- end -}}
