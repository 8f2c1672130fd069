// The pod sandbox ("pause") program: the local node has no image registry, so its sandbox
// image is this static binary in an otherwise empty image (hack/images.sh).
module datamesh.io/hack/pause

go 1.25.0
