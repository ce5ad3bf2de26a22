{{/*
The enabled node-pool providers as `barge operator --providers` takes them (values providers.*):
a comma-separated list, or "none".
*/}}
{{- define "barge.providers" -}}
{{- $enabled := list }}
{{- if .Values.providers.simulated.enabled }}{{ $enabled = append $enabled "simulated" }}{{ end }}
{{- if .Values.providers.karpenter.enabled }}{{ $enabled = append $enabled "karpenter" }}{{ end }}
{{- if .Values.providers.clusterAPI.enabled }}{{ $enabled = append $enabled "cluster-api" }}{{ end }}
{{- if $enabled }}{{ join "," $enabled }}{{ else }}none{{ end }}
{{- end }}
