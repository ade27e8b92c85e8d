"""Full-reference and set metrics for restored faces (PSNR, SSIM, IDD, LMD, PD-MNv2, FD-MNv2, FD-dlib), the
no-reference ones from `facemend.quality`, and reports with bootstrap intervals."""
