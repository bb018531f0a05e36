"""The control register of a Vitis HLS IP with `s_axilite port = return` (the ap_ctrl_hs
protocol, UG1399 "S_AXILITE Control Register Map"): register CTRL at offset 0. The one home of
its bits, used by the driver (runtime/drivers/hls_ip.py), the simulated PL (sim_device.py) and
the register map the manifest gives PYNQ (manifest.py)."""

CTRL_OFFSET = 0

AP_START_BIT, AP_DONE_BIT, AP_IDLE_BIT, AP_READY_BIT, AUTO_RESTART_BIT = 0, 1, 2, 3, 7
AP_START = 1 << AP_START_BIT          # host writes 1 to start; reads 1 while running
AP_DONE = 1 << AP_DONE_BIT            # clear-on-read: the call finished
AP_IDLE = 1 << AP_IDLE_BIT            # not running
AP_READY = 1 << AP_READY_BIT          # ready for new inputs (clear-on-read)
AUTO_RESTART = 1 << AUTO_RESTART_BIT  # restart after each call
HOST_WRITABLE = AP_START | AUTO_RESTART   # the bits a host write changes (the others are status)

# (name, bit, access) of each field, as a .hwh describes CTRL
CTRL_FIELDS = (("AP_START", AP_START_BIT, "read-write"), ("AP_DONE", AP_DONE_BIT, "read-only"),
               ("AP_IDLE", AP_IDLE_BIT, "read-only"), ("AP_READY", AP_READY_BIT, "read-only"),
               ("AUTO_RESTART", AUTO_RESTART_BIT, "read-write"))
