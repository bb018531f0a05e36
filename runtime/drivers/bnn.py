"""Driver of the multiplier-free BNN IP (hls_src/bnn, VLNV pynq-deploy.org:hls:bnn:1.0)."""
from .hls_ip import HlsIP

MODE_LOAD, MODE_CLASSIFY = 0, 1


class BnnDriver(HlsIP):
    bindto = ["pynq-deploy.org:hls:bnn:1.0"]

    def load_params(self, params, timeout_s=1.0):
        """Copy packed weights/thresholds (a PynqBuffer of uint64) into the on-chip memories."""
        params.flush()
        self.write_reg("params", params.physical_address)
        self.write_reg("mode", MODE_LOAD)
        self.write_reg("n_images", 0)
        self.start()
        self.wait(timeout_s)

    def classify(self, images, scores, n_images, timeout_s=1.0):
        """Classify the first n_images uint8 images of a PynqBuffer into int32 scores (a PynqBuffer).
        Only the images used are flushed and only their scores invalidated: the buffers are sized
        for the largest batch, a call may use one image."""
        self._mark("flush")
        images[:n_images].flush()
        self._mark("start")
        self.write_reg("images", images.physical_address)
        self.write_reg("scores", scores.physical_address)
        self.write_reg("mode", MODE_CLASSIFY)
        self.write_reg("n_images", n_images)
        self.start()
        self.wait(timeout_s)
        self._mark("done")
        scores[:n_images].invalidate()
        self._mark("invalidated")
