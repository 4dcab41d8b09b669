// Package chart tests the Helm chart in charts/herald: it runs `helm lint` and
// `helm template` with the default values and with charts/herald/ci/full-values.yaml,
// decodes what renders and checks the parts a platform team relies on (probes, security
// context, grace period against the drain timeout, every HERALD_ variable wired from the
// ConfigMap or the Secret, autoscaling, the dashboard's metric names) and that
// values.schema.json refuses bad values.
//
// The tests need helm: $HELM, else helm on PATH, else $(go env GOPATH)/bin/helm, which
// `make test` installs with go install helm.sh/helm/v3/cmd/helm@v3.22.0.
package chart
