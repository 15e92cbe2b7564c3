# fastcnn._ext: pool kernels (filled in by the pool work)
