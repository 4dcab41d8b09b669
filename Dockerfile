# syntax=docker/dockerfile:1
# Herald: one static binary, one image for `herald worker` and `herald api`.
#   docker build -t herald .

# The builder runs on the build host's platform and cross-compiles (no emulation for
# multi-arch builds: docker buildx build --platform linux/amd64,linux/arm64).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (CGO off), no local paths (-trimpath), no symbol tables (-s -w).
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /herald ./cmd/herald

# distroless/static: CA certificates and tzdata (quiet hours in the recipient's zone), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /herald /herald
# nonroot: uid/gid 65532, as the chart's securityContext expects.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/herald"]
CMD ["worker"]
