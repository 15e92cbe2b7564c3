# fastcnn._ext: nn kernels (filled in by the nn work)
