{{/*
One Deployment of the image; worker.yaml and api.yaml call it with
(dict "root" $ "component" "worker" "values" .Values.worker "autoscaled" bool "preStop" seconds).
*/}}
{{- define "herald.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $port := include "herald.httpPort" $root | atoi -}}
{{- $opsPort := include "herald.opsPort" $root | atoi -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "herald.fullname" $root }}-{{ .component }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # A new pod is ready before an old one starts draining.
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "herald.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "herald.componentSelectorLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when the configuration changes: envFrom is read only at start.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if not $root.Values.existingSecret }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "herald.serviceAccountName" $root }}
      # Herald talks to no Kubernetes API.
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      # HERALD_SHUTDOWN_TIMEOUT (the drain) + terminationGraceMarginSeconds{{ if .preStop }} + the preStop sleep{{ end }}.
      terminationGracePeriodSeconds: {{ include "herald.terminationGracePeriodSeconds" . }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "herald.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ .component | quote }}]
          ports:
            {{- if eq .component "api" }}
            # The API and webhooks: the one port the outside reaches.
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
            {{- end }}
            # Health, readiness and metrics (HERALD_OPS_ADDR), apart from the API.
            - name: ops
              containerPort: {{ $opsPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "herald.fullname" $root }}
          # Only this component's secret variables; optional, so unused providers need no
          # key (the variable stays unset).
          env:
            {{- range (include (printf "herald.%sSecretEnvNames" .component) $root | splitList " ") }}
            - name: {{ . }}
              valueFrom:
                secretKeyRef:
                  name: {{ include "herald.secretName" $root }}
                  key: {{ . }}
                  optional: true
            {{- end }}
            {{- if $root.Values.natsCreds.enabled }}
            - name: HERALD_NATS_CREDS
              value: {{ printf "%s/nats.creds" (trimSuffix "/" $root.Values.natsCreds.mountPath) | quote }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .preStop }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ .preStop }}
          {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: ops
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: ops
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $root.Values.natsCreds.enabled }}
            - name: nats-creds
              mountPath: {{ $root.Values.natsCreds.mountPath }}
              readOnly: true
            {{- end }}
            {{- with $root.Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        # The root file system is read-only; /tmp is the only scratch space.
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if $root.Values.natsCreds.enabled }}
        - name: nats-creds
          secret:
            secretName: {{ include "herald.secretName" $root }}
            defaultMode: 0440
            items:
              - key: HERALD_NATS_CREDS
                path: nats.creds
        {{- end }}
        {{- with $root.Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
