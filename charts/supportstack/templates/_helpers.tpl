{{/*
The chart name, or nameOverride.
*/}}
{{- define "supportstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, or the release name (plus the chart name unless the release
name already contains it). With release name "supportstack" the names equal those of config/default.
*/}}
{{- define "supportstack.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the operator's Deployment, ServiceAccount and the base of its other objects.
*/}}
{{- define "supportstack.managerName" -}}
{{- printf "%s-controller-manager" (include "supportstack.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "supportstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator pods.
*/}}
{{- define "supportstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "supportstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller-manager
{{- end }}

{{/*
Labels of every object of the chart.
*/}}
{{- define "supportstack.labels" -}}
helm.sh/chart: {{ include "supportstack.chart" . }}
{{ include "supportstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The operator image; the operator hands the same image to the tenants' ingest and dashboard pods.
*/}}
{{- define "supportstack.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The portal's selector labels: its own component, so that neither selects the other's pods.
*/}}
{{- define "supportstack.portalSelectorLabels" -}}
app.kubernetes.io/name: {{ include "supportstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: portal
{{- end }}

{{/*
The portal's labels.
*/}}
{{- define "supportstack.portalLabels" -}}
helm.sh/chart: {{ include "supportstack.chart" . }}
{{ include "supportstack.portalSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The manager's generated rules split by scope: "cluster" holds the rules on cluster-scoped resources (PeerClusters),
"namespaced" those on namespaced ones. With watchNamespaces set, only "cluster" is granted cluster-wide and
"namespaced" in each watched namespace. Returns YAML: {cluster: [...], namespaced: [...]}.
*/}}
{{- define "supportstack.managerRulesByScope" -}}
{{- $clusterScoped := list "peerclusters" "peerclusters/status" -}}
{{- $cluster := list -}}
{{- $namespaced := list -}}
{{- range (.Files.Get "files/manager-rbac-rules.yaml" | fromYamlArray) -}}
{{- $c := list -}}
{{- $n := list -}}
{{- range .resources -}}
{{- if has . $clusterScoped }}{{ $c = append $c . }}{{ else }}{{ $n = append $n . }}{{ end -}}
{{- end -}}
{{- if $c }}{{ $cluster = append $cluster (set (deepCopy .) "resources" $c) }}{{ end -}}
{{- if $n }}{{ $namespaced = append $namespaced (set (deepCopy .) "resources" $n) }}{{ end -}}
{{- end -}}
{{- dict "cluster" $cluster "namespaced" $namespaced | toYaml -}}
{{- end }}
