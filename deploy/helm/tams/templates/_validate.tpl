{{/*
Checks that values.schema.json cannot express (they compare values with each other).
Each failure says what to change.
*/}}
{{- define "tams.validate" -}}
{{- $v := .Values -}}
{{- $sqlite := include "tams.sqlite" . -}}
{{- range $name := include "tams.serviceNames" . | fromJsonArray -}}
{{- $as := (index $v $name).autoscaling -}}
{{- if and $as.enabled $sqlite -}}
{{- fail (printf "%s.autoscaling.enabled: the SQLite trial runs as one pod; autoscaling needs store.type=vast" $name) -}}
{{- end -}}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling: minReplicas (%d) is above maxReplicas (%d)" $name (int $as.minReplicas) (int $as.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- /* A consumer group member without a partition sits idle: never run more of them. */ -}}
{{- if not $sqlite -}}
{{- range $name := include "tams.consumerNames" . | fromJsonArray -}}
{{- $svc := index $v $name -}}
{{- $partitions := int $v.kafka.commandPartitions -}}
{{- if eq $name "webhooks" -}}
{{- $partitions = min $partitions (int $v.kafka.eventsPartitions) | int -}}
{{- end -}}
{{- $most := ternary (int $svc.autoscaling.maxReplicas) (int $svc.replicas) (eq $svc.autoscaling.enabled true) -}}
{{- if gt $most $partitions -}}
{{- fail (printf "%s: up to %d replicas but its topic has %d partitions; a consumer without a partition idles. Lower the replicas, or create more partitions and set kafka.commandPartitions / kafka.eventsPartitions to match" $name $most $partitions) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.kafka.inCluster.enabled $v.kafka.bootstrapServers -}}
{{- fail "kafka: set either kafka.bootstrapServers (external cluster) or kafka.inCluster.enabled, not both" -}}
{{- end -}}
{{- if and $v.credentials.s3ExtraBackendsKey $v.s3.extraBackends -}}
{{- fail "s3: give extra storage backends either as s3.extraBackends or in the Secret (credentials.s3ExtraBackendsKey), not both" -}}
{{- end -}}
{{- end -}}
