{{/*
Helpers. Those that take a component are called with (dict "ctx" $ "component" "gateway");
the component is "gateway", "statusd", or "" for objects both share.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "dlrhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: "<release>-<chart>", or the release name when it already contains the chart
name. Truncated to 55 characters so that "-gateway"/"-statusd" still fit a 63-character
DNS label.
*/}}
{{- define "dlrhub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of a component's objects: "<fullname>-<component>". */}}
{{- define "dlrhub.componentName" -}}
{{- printf "%s-%s" (include "dlrhub.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "dlrhub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name, instance and component only, so selectors never change. */}}
{{- define "dlrhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dlrhub.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Every object's labels: the selector labels plus chart, version and manager. */}}
{{- define "dlrhub.labels" -}}
helm.sh/chart: {{ include "dlrhub.chart" .ctx }}
{{ include "dlrhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: dlrhub
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "dlrhub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dlrhub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference of a component: its own override, else image.*, tag else appVersion. */}}
{{- define "dlrhub.image" -}}
{{- $global := .ctx.Values.image }}
{{- $own := (index .ctx.Values .component).image | default dict }}
{{- $repository := default $global.repository $own.repository }}
{{- $digest := default $global.digest $own.digest }}
{{- $tag := default (default .ctx.Chart.AppVersion $global.tag) $own.tag }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the secret settings. */}}
{{- define "dlrhub.secretName" -}}
{{- default (include "dlrhub.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The Secret with statusd's tokens and page-token signing key: statusd.auth.existingSecret, or
the one the chart generates (templates/statusd/auth-secret.yaml).
*/}}
{{- define "dlrhub.authSecretName" -}}
{{- default (printf "%s-statusd-auth" (include "dlrhub.fullname" .) | trunc 63 | trimSuffix "-") .Values.statusd.auth.existingSecret }}
{{- end }}

{{/* The auth Secret's keys. */}}
{{- define "dlrhub.authKeys" -}}
{{- toJson (list "admin-token" "ingest-token" "read-token" "token-signing-key") }}
{{- end }}

{{/* Where the auth Secret's files are mounted. */}}
{{- define "dlrhub.authDir" -}}
/etc/dlrhub/auth
{{- end }}

{{/*
Which auth Secret keys a component reads, as key → setting name (without DLRHUB_): statusd
all four, the gateway only the ingest token it sends.
*/}}
{{- define "dlrhub.authFiles" -}}
{{- if eq .component "gateway" }}
{{- toJson (dict "ingest-token" "GATEWAY_INGEST_TOKEN") }}
{{- else }}
{{- toJson (dict "ingest-token" "INGEST_TOKENS" "read-token" "READ_TOKENS" "admin-token" "ADMIN_TOKENS" "token-signing-key" "TOKEN_SIGNING_KEYS") }}
{{- end }}
{{- end }}

{{/* The DLRHUB_<NAME>_FILE variables that point a component at its auth files. */}}
{{- define "dlrhub.authEnv" -}}
{{- range $key, $name := include "dlrhub.authFiles" . | fromJson }}
- name: DLRHUB_{{ $name }}_FILE
  value: {{ printf "%s/%s" (include "dlrhub.authDir" $.ctx) $key | quote }}
{{- end }}
{{- end }}

{{/* The volume with a component's auth files (only the keys it reads). */}}
{{- define "dlrhub.authVolume" -}}
- name: auth
  secret:
    secretName: {{ include "dlrhub.authSecretName" .ctx }}
    defaultMode: 0440
    items:
      {{- range $key, $_ := include "dlrhub.authFiles" . | fromJson }}
      - key: {{ $key }}
        path: {{ $key }}
      {{- end }}
{{- end }}

{{/* Refuses statusd's auth settings in secrets.* or config, where they would be ambiguous. */}}
{{- define "dlrhub.authGuard" -}}
{{- $owned := dict "gateway" (list "GATEWAY_INGEST_TOKEN") "statusd" (list "INGEST_TOKENS" "READ_TOKENS" "ADMIN_TOKENS" "TOKEN_SIGNING_KEYS") }}
{{- range $component, $names := $owned }}
{{- range $name := $names }}
{{- range $where := list "secrets" "config" }}
{{- $values := ternary (index $.Values.secrets $component) (index $.Values $component).config (eq $where "secrets") | default dict }}
{{- if hasKey $values $name }}
{{- fail (printf "%s: statusd's tokens and signing key come from statusd.auth (a generated Secret, or statusd.auth.existingSecret)" (ternary (printf "secrets.%s.%s" $component $name) (printf "%s.config.%s" $component $name) (eq $where "secrets"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the secret settings are mounted as files. */}}
{{- define "dlrhub.secretsDir" -}}
/etc/dlrhub/secrets
{{- end }}

{{/* Where statusd keeps its SQLite file. */}}
{{- define "dlrhub.sqliteDir" -}}
/var/lib/dlrhub
{{- end }}

{{/*
The secret settings a component reads, as a sorted list of names without DLRHUB_. With
existingSecret every listed name is used; otherwise only those with a value. statusd reads
MONGODB_URI only with storage.backend=mongodb.
*/}}
{{- define "dlrhub.secretKeys" -}}
{{- $values := index .ctx.Values.secrets .component | default dict }}
{{- $keys := list }}
{{- range $name, $value := $values }}
{{- if or $.ctx.Values.secrets.existingSecret $value }}
{{- if not (and (eq $.component "statusd") (eq $name "MONGODB_URI") (ne $.ctx.Values.storage.backend "mongodb")) }}
{{- $keys = append $keys $name }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (sortAlpha $keys) }}
{{- end }}

{{/* Every secret setting the chart's own Secret holds: gateway's and statusd's, merged. */}}
{{- define "dlrhub.secretData" -}}
{{- $data := dict }}
{{- range $component := list "gateway" "statusd" }}
{{- $keys := include "dlrhub.secretKeys" (dict "ctx" $ "component" $component) | fromJsonArray }}
{{- range $name := $keys }}
{{- $value := index (index $.Values.secrets $component) $name | toString }}
{{- if and (hasKey $data $name) (ne (index $data $name) $value) }}
{{- fail (printf "secrets.gateway.%s and secrets.statusd.%s differ: one Secret key holds both" $name $name) }}
{{- end }}
{{- $_ := set $data $name $value }}
{{- end }}
{{- end }}
{{- toJson $data }}
{{- end }}

{{/* The base URL providers call: publicUrl, else the first ingress host. */}}
{{- define "dlrhub.publicUrl" -}}
{{- if .Values.publicUrl }}
{{- .Values.publicUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}
{{- if has $host .hosts }}
{{- $tls = true }}
{{- end }}
{{- end }}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- end }}
{{- end }}

{{/* statusd's Service address inside the cluster. */}}
{{- define "dlrhub.statusdHost" -}}
{{- printf "%s.%s.svc" (include "dlrhub.componentName" (dict "ctx" . "component" "statusd")) .Release.Namespace }}
{{- end }}

{{/* statusd's headless Service: its DNS name answers every ready statusd pod's address. */}}
{{- define "dlrhub.statusdHeadlessName" -}}
{{- printf "%s-statusd-headless" (include "dlrhub.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{/*
The gateway's gRPC target: every ready statusd pod through the headless Service, pod port
(no Service port mapping on a headless Service); the gateway takes turns over them.
*/}}
{{- define "dlrhub.statusdTarget" -}}
{{- printf "dns:///%s.%s.svc:%v" (include "dlrhub.statusdHeadlessName" .) .Release.Namespace .Values.statusd.containerPorts.grpc }}
{{- end }}

{{/* A probe's timings from values (enabled is the chart's switch, not a probe field). */}}
{{- define "dlrhub.probeTimings" -}}
{{- toYaml (omit . "enabled") }}
{{- end }}

{{/*
topologySpreadConstraints with the component's selector filled in where a constraint has
no labelSelector.
*/}}
{{- define "dlrhub.topologySpreadConstraints" -}}
{{- $values := index .ctx.Values .component }}
{{- $selector := include "dlrhub.selectorLabels" . | fromYaml }}
{{- $constraints := list }}
{{- range $values.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/* Pod annotations that roll the pods when their configuration or secrets change. */}}
{{- define "dlrhub.checksums" -}}
checksum/config: {{ include (print .ctx.Template.BasePath "/" .component "/configmap.yaml") .ctx | sha256sum }}
{{- if .ctx.Values.secrets.existingSecret }}
checksum/secret: {{ printf "%s %s" .ctx.Values.secrets.existingSecret (include "dlrhub.secretKeys" .) | sha256sum }}
{{- else }}
checksum/secret: {{ include (print .ctx.Template.BasePath "/secret.yaml") .ctx | sha256sum }}
{{- end }}
{{- if .ctx.Values.statusd.auth.existingSecret }}
checksum/auth: {{ .ctx.Values.statusd.auth.existingSecret | sha256sum }}
{{- else }}
checksum/auth: {{ include (print .ctx.Template.BasePath "/statusd/auth-secret.yaml") .ctx | sha256sum }}
{{- end }}
{{- end }}

{{/* The DLRHUB_<NAME>_FILE variables that point a component at its secret files. */}}
{{- define "dlrhub.secretEnv" -}}
{{- range $name := include "dlrhub.secretKeys" . | fromJsonArray }}
- name: DLRHUB_{{ $name }}_FILE
  value: {{ printf "%s/%s" (include "dlrhub.secretsDir" $.ctx) $name | quote }}
{{- end }}
{{- end }}

{{/* The volume with a component's secret files (only its own keys), if it has any. */}}
{{- define "dlrhub.secretVolume" -}}
{{- $keys := include "dlrhub.secretKeys" . | fromJsonArray }}
{{- if $keys }}
- name: secrets
  secret:
    secretName: {{ include "dlrhub.secretName" .ctx }}
    defaultMode: 0440
    items:
      {{- range $keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}
{{- end }}

{{/* The scheduling fields shared by both components' pods. */}}
{{- define "dlrhub.scheduling" -}}
{{- $values := index .ctx.Values .component }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- include "dlrhub.topologySpreadConstraints" . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A value as an environment-variable string. Numbers from values arrive as float64, which
toString would print as 2.097152e+06; whole numbers are printed as integers.
*/}}
{{- define "dlrhub.envString" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
OpenTelemetry's own variables from otel.* (traces are off without an endpoint), set into the
dict .env; used as (dict "env" $env "otel" .Values.otel).
*/}}
{{- define "dlrhub.otelEnv" -}}
{{- with .otel.endpoint }}{{ $_ := set $.env "OTEL_EXPORTER_OTLP_ENDPOINT" . }}{{ end }}
{{- with .otel.sampler }}{{ $_ := set $.env "OTEL_TRACES_SAMPLER" . }}{{ end }}
{{- with .otel.samplerArg }}{{ $_ := set $.env "OTEL_TRACES_SAMPLER_ARG" . }}{{ end }}
{{- with .otel.resourceAttributes }}{{ $_ := set $.env "OTEL_RESOURCE_ATTRIBUTES" . }}{{ end }}
{{- end }}
