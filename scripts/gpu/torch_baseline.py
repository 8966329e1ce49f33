"""PyTorch's time for the step segkit's W48 512x512 training step is measured against: timm's
hrnet_w48 features (the raw 48/96/192/384 branches) + mmseg's FCN head (upsample, concat 720
channels, 1x1 conv + BN + ReLU, 1x1 conv to 21 classes), SGD momentum 0.9, weight decay 5e-4,
cross-entropy ignoring 255, cudnn.benchmark. Prints one line per (batch, precision)."""
import sys, time
import torch, torch.nn as nn, torch.nn.functional as F
import timm


class FCN(nn.Module):
    def __init__(self, classes=21):
        super().__init__()
        self.backbone = timm.create_model("hrnet_w48", features_only=True, feature_location="", out_indices=(1, 2, 3, 4))
        self.conv = nn.Sequential(nn.Conv2d(720, 720, 1, bias=False), nn.BatchNorm2d(720), nn.ReLU(inplace=True))
        self.cls = nn.Conv2d(720, classes, 1)

    def forward(self, x):
        fs = self.backbone(x)
        h, w = fs[0].shape[2:]
        fs = [fs[0]] + [F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False) for f in fs[1:]]
        return self.cls(self.conv(torch.cat(fs, 1)))


def main():
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    model = FCN().to(dev).train()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, parameters {sum(p.numel() for p in model.parameters())/1e6:.2f} M (segkit info --model w48: 65.86 M with its head)")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for batch in (8, 16):
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            x = torch.randn(batch, 3, 512, 512, device=dev)
            y = torch.randint(0, 21, (batch, 512, 512), device=dev)
            times = []
            for it in range(13):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = F.interpolate(model(x), size=(512, 512), mode="bilinear", align_corners=False)
                loss = F.cross_entropy(out, y, ignore_index=255)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                end.record()
                torch.cuda.synchronize()
                if it >= 3:
                    times.append(start.elapsed_time(end))
            times.sort()
            med = times[len(times) // 2]
            print(f"pytorch w48 512x512 batch {batch} {'tf32' if tf32 else 'fp32'}: {med:.1f} ms/step, {batch*1000/med:.1f} images/s, "
                  f"peak {torch.cuda.max_memory_allocated()/2**30:.1f} GiB")
            torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    sys.exit(main())
