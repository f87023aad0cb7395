{{/* Ingress rules of one service. Call with (dict "root" $ "name" "gateway"). */}}
{{- define "tams.networkPolicy.ingress" -}}
{{- $root := .root -}}
{{- $np := $root.Values.networkPolicy -}}
{{- $port := include "tams.port" . | int -}}
{{- $rules := list -}}
{{- if eq .name "gateway" -}}
{{- $rule := dict "ports" (list (dict "protocol" "TCP" "port" $port)) -}}
{{- with $np.gatewayFrom }}{{ $_ := set $rule "from" . }}{{ end -}}
{{- $rules = append $rules $rule -}}
{{- if not (include "tams.sqlite" $root) -}}
{{- $from := list -}}
{{- range $service := list "catalog" "segments" "webhooks" -}}
{{- $from = append $from (dict "podSelector" (dict "matchLabels" (include "tams.selectorLabels" (dict "root" $root "component" $service) | fromYaml))) -}}
{{- end -}}
{{- $rules = append $rules (dict "ports" (list (dict "protocol" "TCP" "port" (include "tams.replyPort" $root | int))) "from" $from) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .name "analytics") (not (include "tams.sqlite" $root)) -}}
{{- $gateway := include "tams.selectorLabels" (dict "root" $root "component" "gateway") | fromYaml -}}
{{- $rules = append $rules (dict "ports" (list (dict "protocol" "TCP" "port" $port)) "from" (list (dict "podSelector" (dict "matchLabels" $gateway)))) -}}
{{- end -}}
{{- $metrics := dict "ports" (list (dict "protocol" "TCP" "port" $port)) -}}
{{- with $np.metricsFrom }}{{ $_ := set $metrics "from" . }}{{ end -}}
{{- $rules = append $rules $metrics -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* Egress rules of one service. */}}
{{- define "tams.networkPolicy.egress" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $np := $v.networkPolicy -}}
{{- $rules := list -}}
{{- /* DNS */ -}}
{{- $dnsPorts := list -}}
{{- range $np.dns.ports }}{{ $dnsPorts = concat $dnsPorts (list (dict "protocol" "UDP" "port" .) (dict "protocol" "TCP" "port" .)) }}{{ end -}}
{{- $rules = append $rules (include "tams.networkPolicy.egressRule" (dict "to" $np.dns.to "ports" $dnsPorts) | fromYaml) -}}
{{- /* Kafka: the configured ports plus those of the bootstrap servers. */ -}}
{{- $ports := list -}}
{{- if $v.kafka.inCluster.enabled -}}
{{- $kafka := include "tams.selectorLabels" (dict "root" $root "component" "kafka") | fromYaml -}}
{{- $rules = append $rules (dict "to" (list (dict "podSelector" (dict "matchLabels" $kafka))) "ports" (list (dict "protocol" "TCP" "port" 9092))) -}}
{{- else -}}
{{- $ports = $np.kafka.ports -}}
{{- range splitList "," $v.kafka.bootstrapServers -}}
{{- with regexFind "[0-9]+$" (trim .) }}{{ $ports = append $ports (atoi .) }}{{ end -}}
{{- end -}}
{{- $rules = append $rules (include "tams.networkPolicy.egressRule" (dict "to" $np.kafka.to "ports" (include "tams.networkPolicy.tcp" $ports | fromYamlArray)) | fromYaml) -}}
{{- end -}}
{{- /* S3: the configured ports plus those of the endpoints. */ -}}
{{- $ports = $np.s3.ports -}}
{{- $urls := list $v.s3.endpointUrl -}}
{{- range $v.s3.extraBackends }}{{ $urls = append $urls (default "" .endpoint_url) }}{{ end -}}
{{- range $url := $urls -}}
{{- with include "tams.urlPort" $url }}{{ $ports = append $ports (atoi .) }}{{ end -}}
{{- end -}}
{{- $rules = append $rules (include "tams.networkPolicy.egressRule" (dict "to" $np.s3.to "ports" (include "tams.networkPolicy.tcp" $ports | fromYamlArray)) | fromYaml) -}}
{{- /* VAST Database: the configured ports plus those of the endpoints. */ -}}
{{- if not (include "tams.sqlite" $root) -}}
{{- $ports = $np.vast.ports -}}
{{- range $url := prepend $v.store.vast.dataEndpoints $v.store.vast.endpoint -}}
{{- with include "tams.urlPort" $url }}{{ $ports = append $ports (atoi .) }}{{ end -}}
{{- end -}}
{{- $rules = append $rules (include "tams.networkPolicy.egressRule" (dict "to" $np.vast.to "ports" (include "tams.networkPolicy.tcp" $ports | fromYamlArray)) | fromYaml) -}}
{{- end -}}
{{- /* The gateway forwards /analytics/* to the analytics service. */ -}}
{{- if and (eq .name "gateway") (not (include "tams.sqlite" $root)) -}}
{{- $analytics := include "tams.selectorLabels" (dict "root" $root "component" "analytics") | fromYaml -}}
{{- $rules = append $rules (dict "to" (list (dict "podSelector" (dict "matchLabels" $analytics))) "ports" (list (dict "protocol" "TCP" "port" 8080))) -}}
{{- end -}}
{{- /* The services answer the gateway that sent each command, pod to pod. */ -}}
{{- if and (has .name (list "catalog" "segments" "webhooks")) (not (include "tams.sqlite" $root)) -}}
{{- $gateway := include "tams.selectorLabels" (dict "root" $root "component" "gateway") | fromYaml -}}
{{- $rules = append $rules (dict "to" (list (dict "podSelector" (dict "matchLabels" $gateway))) "ports" (list (dict "protocol" "TCP" "port" (include "tams.replyPort" $root | int)))) -}}
{{- end -}}
{{- /* The gateway fetches the token issuer's keys (JWKS), when one is configured. */ -}}
{{- if eq .name "gateway" -}}
{{- with include "tams.urlPort" $v.auth.jwt.jwksUrl -}}
{{- $rules = append $rules (dict "ports" (list (dict "protocol" "TCP" "port" (atoi .)))) -}}
{{- end -}}
{{- end -}}
{{- /* The OpenTelemetry collector, when one is configured. */ -}}
{{- with include "tams.urlPort" $v.otel.exporterOtlpEndpoint -}}
{{- $rules = append $rules (dict "ports" (list (dict "protocol" "TCP" "port" (atoi .)))) -}}
{{- end -}}
{{- /* Webhook receivers, any port. */ -}}
{{- if eq .name "webhooks" -}}
{{- $rules = append $rules (dict "to" $np.webhooksTo) -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* An egress rule; an empty `to` means any destination on those ports. */}}
{{- define "tams.networkPolicy.egressRule" -}}
{{- $rule := dict "ports" .ports -}}
{{- with .to }}{{ $_ := set $rule "to" . }}{{ end -}}
{{- toYaml $rule -}}
{{- end -}}

{{/* TCP port entries, each port once, in ascending order. */}}
{{- define "tams.networkPolicy.tcp" -}}
{{- $numbers := list -}}
{{- range . }}{{ $numbers = append $numbers (int .) }}{{ end -}}
{{- $ports := list -}}
{{- range $numbers | uniq | sortAlpha }}{{ $ports = append $ports (dict "protocol" "TCP" "port" (atoi .)) }}{{ end -}}
{{- toYaml $ports -}}
{{- end -}}

{{/* The TCP port of an http(s) URL: explicit, else 80 or 443 by scheme; empty for "". */}}
{{- define "tams.urlPort" -}}
{{- if . -}}
{{- $url := urlParse . -}}
{{- $explicit := regexFind ":[0-9]+$" $url.host -}}
{{- if $explicit -}}
{{- trimPrefix ":" $explicit -}}
{{- else -}}
{{- ternary "443" "80" (eq $url.scheme "https") -}}
{{- end -}}
{{- end -}}
{{- end -}}
