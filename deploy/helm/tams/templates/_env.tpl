{{/*
The environment of one service's container. Call with (dict "root" $ "name" "gateway").

The chart's typed values come first, then the global env / extraEnv, then the service's own
env / extraEnv. A name given twice keeps its first position and its last value, so any typed
setting can be overridden and no container gets duplicate names.
Credentials only ever come from the existing Secret (valueFrom.secretKeyRef).
*/}}
{{- define "tams.env" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := $root.Values -}}
{{- $svc := index $v $name -}}
{{- $secret := $v.credentials.existingSecret -}}
{{- $e := list -}}

{{- /* Logging and where this process listens. */ -}}
{{- $e = append $e (dict "name" "TAMS_LOG_LEVEL" "value" $v.logLevel) -}}
{{- if eq $name "gateway" -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_HOST" "value" $v.listenHost) -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_PORT" "value" (include "tams.port" .)) -}}
{{- /* The services send replies straight to the pod that sent the command: its own IP. */ -}}
{{- $e = append $e (dict "name" "TAMS_REPLY_PORT" "value" (include "tams.replyPort" $root)) -}}
{{- if include "tams.sqlite" $root -}}
{{- $e = append $e (dict "name" "TAMS_REPLY_HOST" "value" "127.0.0.1") -}}
{{- else -}}
{{- $e = append $e (dict "name" "TAMS_REPLY_HOST" "value" $v.listenHost) -}}
{{- $e = append $e (dict "name" "TAMS_REPLY_ADVERTISE_HOST" "valueFrom" (dict "fieldRef" (dict "fieldPath" "status.podIP"))) -}}
{{- end -}}
{{- with include "tams.gatewayPublicUrl" $root -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_PUBLIC_URL" "value" .) -}}
{{- end -}}
{{- /* /analytics/* is forwarded to the analytics service (its own container in the
     SQLite trial pod, its Service otherwise). */ -}}
{{- if include "tams.sqlite" $root -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_ANALYTICS_URL" "value" (printf "http://127.0.0.1:%s" (include "tams.port" (dict "root" $root "name" "analytics")))) -}}
{{- else -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_ANALYTICS_URL" "value" (printf "http://%s-analytics.%s.svc.%s:8080" (include "tams.fullname" $root) $root.Release.Namespace $v.clusterDomain)) -}}
{{- end -}}
{{- $gw := dict "DEFAULT_PAGE_LIMIT" $svc.defaultPageLimit "MAX_PAGE_LIMIT" $svc.maxPageLimit "MAX_BODY_BYTES" $svc.maxBodyBytes "PLAYLIST_MAX_SEGMENTS" $svc.playlistMaxSegments "PLAYLIST_URL_TIMEOUT_S" $svc.playlistUrlTimeoutS -}}
{{- range $key := list "DEFAULT_PAGE_LIMIT" "MAX_PAGE_LIMIT" "MAX_BODY_BYTES" "PLAYLIST_MAX_SEGMENTS" "PLAYLIST_URL_TIMEOUT_S" -}}
{{- $value := get $gw $key -}}
{{- if include "tams.isSet" $value -}}
{{- $e = append $e (dict "name" (printf "TAMS_GATEWAY_%s" $key) "value" (include "tams.int" $value)) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $e = append $e (dict "name" "TAMS_HTTP_HOST" "value" $v.listenHost) -}}
{{- $e = append $e (dict "name" "TAMS_HTTP_PORT" "value" (include "tams.port" .)) -}}
{{- end -}}

{{- /* Object lifetime and deletion: every service reads them. */ -}}
{{- $m := $v.media -}}
{{- $mint := dict "MIN_OBJECT_TIMEOUT_S" $m.minObjectTimeoutSeconds "RELEASE_GRACE_S" $m.releaseGraceSeconds "SYNC_DELETE_LIMIT" $m.syncDeleteLimit "DELETE_CHUNK_SEGMENTS" $m.deleteChunkSegments "SEGMENT_TAG_LIMIT" $m.segmentTagLimit -}}
{{- range $key := list "MIN_OBJECT_TIMEOUT_S" "RELEASE_GRACE_S" "SYNC_DELETE_LIMIT" "DELETE_CHUNK_SEGMENTS" "SEGMENT_TAG_LIMIT" -}}
{{- $value := get $mint $key -}}
{{- if include "tams.isSet" $value -}}
{{- $e = append $e (dict "name" (printf "TAMS_MEDIA_%s" $key) "value" (include "tams.int" $value)) -}}
{{- end -}}
{{- end -}}
{{- /* Soft delete of flows (docs/ext-soft-delete.md): 0 or unset is off. */ -}}
{{- if include "tams.isSet" $m.softDeleteRetentionSeconds -}}
{{- $e = append $e (dict "name" "TAMS_SOFT_DELETE_RETENTION_S" "value" (include "tams.int" $m.softDeleteRetentionSeconds)) -}}
{{- end -}}

{{- /* Kafka. */ -}}
{{- with include "tams.kafkaBootstrapServers" $root -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_BOOTSTRAP_SERVERS" "value" .) -}}
{{- end -}}
{{- $k := $v.kafka -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_TOPIC_PREFIX" "value" $k.topicPrefix) -}}
{{- with $k.eventsTopic -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_EVENTS_TOPIC" "value" .) -}}
{{- end -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_COMMAND_PARTITIONS" "value" (include "tams.int" $k.commandPartitions)) -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_EVENTS_PARTITIONS" "value" (include "tams.int" $k.eventsPartitions)) -}}
{{- $kint := dict "SESSION_TIMEOUT_MS" $k.sessionTimeoutMs "HEARTBEAT_INTERVAL_MS" $k.heartbeatIntervalMs "FETCH_MAX_WAIT_MS" $k.fetchMaxWaitMs "MAX_POLL_RECORDS" $k.maxPollRecords -}}
{{- range $key := list "SESSION_TIMEOUT_MS" "HEARTBEAT_INTERVAL_MS" "FETCH_MAX_WAIT_MS" "MAX_POLL_RECORDS" -}}
{{- $value := get $kint $key -}}
{{- if include "tams.isSet" $value -}}
{{- $e = append $e (dict "name" (printf "TAMS_KAFKA_%s" $key) "value" (include "tams.int" $value)) -}}
{{- end -}}
{{- end -}}
{{- if include "tams.isSet" $k.replyTimeoutSeconds -}}
{{- $e = append $e (dict "name" "TAMS_KAFKA_REPLY_TIMEOUT_S" "value" (toString $k.replyTimeoutSeconds)) -}}
{{- end -}}

{{- /* Metadata store. /data is the SQLite volume, or scratch space otherwise. */ -}}
{{- $e = append $e (dict "name" "TAMS_STORE" "value" $v.store.type) -}}
{{- $e = append $e (dict "name" "TAMS_DATA_DIR" "value" "/data") -}}
{{- if include "tams.sqlite" $root -}}
{{- $e = append $e (dict "name" "TAMS_SQLITE_SYNCHRONOUS" "value" $v.store.sqlite.synchronous) -}}
{{- $e = append $e (dict "name" "TAMS_SQLITE_WRITER_CACHE_MB" "value" (toString $v.store.sqlite.writerCacheMb)) -}}
{{- $e = append $e (dict "name" "TAMS_SQLITE_WRITES_ON_LOOP" "value" (toString $v.store.sqlite.writesOnLoop)) -}}
{{- $e = append $e (dict "name" "TAMS_SQLITE_COMMANDS_PER_TRANSACTION" "value" (toString $v.store.sqlite.commandsPerTransaction)) -}}
{{- else -}}
{{- $vast := $v.store.vast -}}
{{- with $vast.endpoint -}}
{{- $e = append $e (dict "name" "VAST_ENDPOINT" "value" .) -}}
{{- end -}}
{{- with $vast.bucket -}}
{{- $e = append $e (dict "name" "VAST_BUCKET" "value" .) -}}
{{- end -}}
{{- $e = append $e (dict "name" "VAST_SCHEMA" "value" $vast.schema) -}}
{{- with $vast.dataEndpoints -}}
{{- $e = append $e (dict "name" "VAST_DATA_ENDPOINTS" "value" (join "," .)) -}}
{{- end -}}
{{- $e = append $e (dict "name" "VAST_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.vastAccessKeyKey))) -}}
{{- $e = append $e (dict "name" "VAST_SECRET_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.vastSecretKeyKey))) -}}
{{- end -}}

{{- /* S3: the default storage backend. */ -}}
{{- $s3 := $v.s3 -}}
{{- $s3str := dict "ENDPOINT_URL" $s3.endpointUrl "PUBLIC_ENDPOINT_URL" $s3.publicEndpointUrl "REGION" $s3.region "BUCKET" $s3.bucket "STORAGE_ID" $s3.storageId "STORAGE_LABEL" $s3.storageLabel "PROVIDER" $s3.provider "STORE_PRODUCT" $s3.storeProduct -}}
{{- range $key := list "ENDPOINT_URL" "PUBLIC_ENDPOINT_URL" "REGION" "BUCKET" "STORAGE_ID" "STORAGE_LABEL" "PROVIDER" "STORE_PRODUCT" -}}
{{- with get $s3str $key -}}
{{- $e = append $e (dict "name" (printf "TAMS_S3_%s" $key) "value" .) -}}
{{- end -}}
{{- end -}}
{{- if include "tams.isSet" $s3.presignedUrlTimeoutSeconds -}}
{{- $e = append $e (dict "name" "TAMS_S3_PRESIGNED_URL_TIMEOUT_S" "value" (include "tams.int" $s3.presignedUrlTimeoutSeconds)) -}}
{{- end -}}
{{- $e = append $e (dict "name" "TAMS_S3_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.s3AccessKeyKey))) -}}
{{- $e = append $e (dict "name" "TAMS_S3_SECRET_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.s3SecretKeyKey))) -}}
{{- with $s3.storageTags -}}
{{- $e = append $e (dict "name" "TAMS_S3_STORAGE_TAGS" "value" (toJson .)) -}}
{{- end -}}
{{- if $v.credentials.s3ExtraBackendsKey -}}
{{- $e = append $e (dict "name" "TAMS_S3_EXTRA_BACKENDS" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.s3ExtraBackendsKey))) -}}
{{- else if $s3.extraBackends -}}
{{- $e = append $e (dict "name" "TAMS_S3_EXTRA_BACKENDS" "value" (toJson $s3.extraBackends)) -}}
{{- end -}}

{{- /* Authentication: the internal token for all, the policy for the gateway and the webhooks
service (which filters deliveries by it), the rest for the gateway. */ -}}
{{- $e = append $e (dict "name" "TAMS_INTERNAL_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.internalTokenKey))) -}}
{{- $auth := $v.auth -}}
{{- if and $auth.policy (or (eq $name "gateway") (eq $name "webhooks")) -}}
{{- $e = append $e (dict "name" "TAMS_AUTH_POLICY" "value" (toJson $auth.policy)) -}}
{{- end -}}
{{- if eq $name "gateway" -}}
{{- if $auth.disabled -}}
{{- $e = append $e (dict "name" "TAMS_AUTH_DISABLED" "value" "true") -}}
{{- end -}}
{{- if $v.credentials.authUsersKey -}}
{{- $e = append $e (dict "name" "TAMS_AUTH_USERS" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $v.credentials.authUsersKey))) -}}
{{- end -}}
{{- $jwt := dict "JWKS_URL" $auth.jwt.jwksUrl "ISSUER" $auth.jwt.issuer "AUDIENCE" $auth.jwt.audience "GROUPS_CLAIM" $auth.jwt.groupsClaim "NAME_CLAIM" $auth.jwt.nameClaim -}}
{{- range $key := list "JWKS_URL" "ISSUER" "AUDIENCE" "GROUPS_CLAIM" "NAME_CLAIM" -}}
{{- with get $jwt $key -}}
{{- $e = append $e (dict "name" (printf "TAMS_AUTH_JWT_%s" $key) "value" .) -}}
{{- end -}}
{{- end -}}
{{- with $auth.corsOrigins -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_CORS_ORIGINS" "value" (join "," .)) -}}
{{- end -}}
{{- if $auth.rateLimitPerSecond -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_RATE_LIMIT_PER_S" "value" (toString $auth.rateLimitPerSecond)) -}}
{{- end -}}
{{- if include "tams.isSet" $auth.rateLimitBurst -}}
{{- $e = append $e (dict "name" "TAMS_GATEWAY_RATE_LIMIT_BURST" "value" (include "tams.int" $auth.rateLimitBurst)) -}}
{{- end -}}
{{- end -}}

{{- /* OpenTelemetry. */ -}}
{{- with $v.otel.exporterOtlpEndpoint -}}
{{- $e = append $e (dict "name" "OTEL_EXPORTER_OTLP_ENDPOINT" "value" .) -}}
{{- $e = append $e (dict "name" "OTEL_SERVICE_NAME" "value" (printf "tams-%s" $name)) -}}
{{- end -}}

{{- /* Overrides: global, then this service's. */ -}}
{{- range $key, $value := $v.env -}}
{{- $e = append $e (dict "name" $key "value" (toString $value)) -}}
{{- end -}}
{{- range $v.extraEnv -}}
{{- $e = append $e . -}}
{{- end -}}
{{- range $key, $value := $svc.env -}}
{{- $e = append $e (dict "name" $key "value" (toString $value)) -}}
{{- end -}}
{{- range $svc.extraEnv -}}
{{- $e = append $e . -}}
{{- end -}}

{{- /* One entry per name: first position, last value. */ -}}
{{- $byName := dict -}}
{{- $order := list -}}
{{- range $e -}}
{{- if not (hasKey $byName .name) -}}
{{- $order = append $order .name -}}
{{- end -}}
{{- $_ := set $byName .name . -}}
{{- end -}}
{{- $out := list -}}
{{- range $order -}}
{{- $out = append $out (get $byName .) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "tams.envFrom" -}}
{{- $svc := index .root.Values .name -}}
{{- $sources := concat .root.Values.extraEnvFrom $svc.extraEnvFrom -}}
{{- if $sources -}}
{{- toYaml $sources -}}
{{- end -}}
{{- end -}}
