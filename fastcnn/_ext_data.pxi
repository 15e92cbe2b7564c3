# fastcnn._ext: data kernels (filled in by the data work)
