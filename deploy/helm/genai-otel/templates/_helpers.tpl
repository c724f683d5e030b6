{{/* Object names: "<release>-<chart>" unless overridden, then "-<component>". */}}
{{- define "genai-otel.fullname" -}}
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

{{/* "<fullname>-<component>"; call with (list $ "component") */}}
{{- define "genai-otel.component" -}}
{{- printf "%s-%s" (include "genai-otel.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "genai-otel.selectorLabels" -}}
app.kubernetes.io/name: {{ default (index . 0).Chart.Name (index . 0).Values.nameOverride }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "genai-otel.labels" -}}
{{ include "genai-otel.selectorLabels" . }}
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ printf "%s-%s" (index . 0).Chart.Name (index . 0).Chart.Version }}
{{- end -}}

{{- define "genai-otel.image" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

{{/* A service's fully qualified DNS name; call with (list $ "service-name") */}}
{{- define "genai-otel.fqdn" -}}
{{- printf "%s.%s.svc.%s" (index . 1) (index . 0).Release.Namespace (index . 0).Values.clusterDomain -}}
{{- end -}}

{{/* The samplers' stable names, as the gateway's static resolver lists them */}}
{{- define "genai-otel.samplerEndpoints" -}}
{{- $sampler := include "genai-otel.component" (list . "sampler") -}}
{{- $headless := include "genai-otel.fqdn" (list . (printf "%s-headless" $sampler)) -}}
{{- $endpoints := list -}}
{{- range $i := until (int .Values.sampler.replicas) -}}
{{- $endpoints = append $endpoints (printf "%s-%d.%s:%d" $sampler $i $headless (int $.Values.ports.samplerOtlp)) -}}
{{- end -}}
{{- toJson $endpoints -}}
{{- end -}}

{{- define "genai-otel.jaegerEndpoint" -}}
{{- if .Values.jaeger.enabled -}}
{{- printf "%s:%d" (include "genai-otel.component" (list . "jaeger")) (int .Values.ports.jaegerOtlpGrpc) -}}
{{- else -}}
{{- required "jaeger.otlpEndpoint is required when jaeger.enabled is false" .Values.jaeger.otlpEndpoint -}}
{{- end -}}
{{- end -}}

{{/* Environment every collector config reads (collector-config/*.yaml headers) */}}
{{- define "genai-otel.collectorEnv" -}}
- name: COLLECTOR_LISTEN_HOST
  value: {{ .Values.listenHost | quote }}
- name: COLLECTOR_HEALTH_PORT
  value: {{ .Values.ports.collectorHealth | quote }}
- name: COLLECTOR_TELEMETRY_PORT
  value: {{ .Values.ports.collectorTelemetry | quote }}
- name: ENRICHED_MAX_RECV_MSG_MIB
  value: {{ .Values.enrichedMaxRecvMsgMiB | quote }}
{{- end -}}
