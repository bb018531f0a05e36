"""A hardware handoff (.hwh) as Vivado writes it for an overlay's block design
(overlays/ultra96v2_bd.tcl), reduced to what PYNQ's parser reads: the Zynq UltraScale+ PS with its
FPD master and memory map, and the HLS IP with its AXI-Lite register block and parameters. Built
from the manifest, so a test can then make it differ in one place."""
from xml.sax.saxutils import quoteattr


def _params(pairs):
    return "".join('<PARAMETER NAME="{}" VALUE="{}"/>'.format(k, v) for k, v in pairs)


def _register(name, offset, size, access):
    return ('<REGISTER NAME="{}"><PROPERTY NAME="DESCRIPTION" VALUE="{}"/>'
            '<PROPERTY NAME="ADDRESS_OFFSET" VALUE="0x{:x}"/><PROPERTY NAME="SIZE" VALUE="{}"/>'
            '<PROPERTY NAME="ACCESS" VALUE="{}"/><PROPERTY NAME="IS_ENABLED" VALUE="true"/>'
            '<PROPERTY NAME="RESET_VALUE" VALUE="0"/><FIELDS/></REGISTER>').format(
                name, name, offset, size, access)


def hwh_text(manifest, registers=None, phys_addr=None, addr_range=None, clock_mhz=None):
    """The .hwh of `manifest`'s overlay. registers: {name: (offset, size)} to use instead of the
    manifest's (Vitis HLS splits 64-bit pointers into name_1 / name_2 words: pass them so)."""
    (ip_name, ip), = manifest.ips.items()
    base = ip["phys_addr"] if phys_addr is None else phys_addr
    size = ip["addr_range"] if addr_range is None else addr_range
    mhz = manifest.clock_mhz if clock_mhz is None else clock_mhz
    if registers is None:
        registers = {n: (r["offset"], r["size"]) for n, r in ip["registers"].items()}
    regs = "".join(_register(n, off, sz, "read-write") for n, (off, sz) in registers.items())
    ps = []
    for clk in range(4):                                  # PL clock 0 only, as the block design
        ps += [("PSU__FPGA_PL{}_ENABLE".format(clk), int(clk == 0)),
               ("PSU__CRL_APB__PL{}_REF_CTRL__FREQMHZ".format(clk), mhz if clk == 0 else 100),
               ("PSU__CRL_APB__PL{}_REF_CTRL__SRCSEL".format(clk), "IOPLL"),
               ("PSU__CRL_APB__PL{}_REF_CTRL__DIVISOR0".format(clk), 6 if clk == 0 else 15),
               ("PSU__CRL_APB__PL{}_REF_CTRL__DIVISOR1".format(clk), 1)]
    ps_params = _params(ps)
    ip_params = _params([("C_S_AXI_CONTROL_ADDR_WIDTH", 7), ("C_S_AXI_CONTROL_DATA_WIDTH", 32),
                         ("clk_period", "{:g}".format(1000.0 / mhz)), ("machine", 64),
                         ("C_S_AXI_CONTROL_BASEADDR", "0x{:08X}".format(base)),
                         ("C_S_AXI_CONTROL_HIGHADDR", "0x{:08X}".format(base + size - 1))])
    bus = "{}_s_axi_control".format(ip_name)
    return """<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="Thu Dec  3 12:00:00 2026" VIVADOVERSION="2022.1">
  <SYSTEMINFO ARCH="zynquplus" BOARD="avnet.com:ultra96v2:part0:1.2" DEVICE="xczu3eg" NAME={name} PACKAGE="sbva484" SPEEDGRADE="-1"/>
  <EXTERNALPORTS/>
  <EXTERNALINTERFACES/>
  <MODULES>
    <MODULE FULLNAME="/zynq_ultra_ps_e_0" HWVERSION="3.4" INSTANCE="zynq_ultra_ps_e_0" IPTYPE="PERIPHERAL" IS_ENABLE="1" MODCLASS="PROCESSOR" MODTYPE="zynq_ultra_ps_e" VLNV="xilinx.com:ip:zynq_ultra_ps_e:3.4">
      <PARAMETERS>{ps_params}</PARAMETERS>
      <PORTS>
        <PORT DIR="O" NAME="pl_clk0" SIGIS="clk" SIGNAME="zynq_ultra_ps_e_0_pl_clk0"><CONNECTIONS><CONNECTION INSTANCE="{ip}" PORT="ap_clk"/></CONNECTIONS></PORT>
      </PORTS>
      <BUSINTERFACES>
        <BUSINTERFACE BUSNAME={bus} DATAWIDTH="32" NAME="M_AXI_HPM0_FPD" TYPE="MASTER" VLNV="xilinx.com:interface:aximm:1.0"><PARAMETERS/><PORTMAPS/></BUSINTERFACE>
      </BUSINTERFACES>
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_S_AXI_CONTROL_BASEADDR" BASEVALUE="0x{base:08X}" HIGHNAME="C_S_AXI_CONTROL_HIGHADDR" HIGHVALUE="0x{high:08X}" INSTANCE="{ip}" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_HPM0_FPD" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control"/>
      </MEMORYMAP>
      <PERIPHERALS><PERIPHERAL INSTANCE="{ip}"/></PERIPHERALS>
    </MODULE>
    <MODULE FULLNAME="/{ip}" HWVERSION="1.0" INSTANCE="{ip}" IPTYPE="PERIPHERAL" IS_ENABLE="1" MODCLASS="PERIPHERAL" MODTYPE="{modtype}" VLNV="{vlnv}">
      <DOCUMENTS/>
      <ADDRESSBLOCKS>
        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="s_axi_control" NAME="Reg" RANGE="{size}" USAGE="register">
          <REGISTERS>{regs}</REGISTERS>
        </ADDRESSBLOCK>
      </ADDRESSBLOCKS>
      <PARAMETERS>{ip_params}</PARAMETERS>
      <PORTS>
        <PORT CLKFREQUENCY="{hz}" DIR="I" NAME="ap_clk" SIGIS="clk" SIGNAME="zynq_ultra_ps_e_0_pl_clk0"><CONNECTIONS><CONNECTION INSTANCE="zynq_ultra_ps_e_0" PORT="pl_clk0"/></CONNECTIONS></PORT>
      </PORTS>
      <BUSINTERFACES>
        <BUSINTERFACE BUSNAME={bus} DATAWIDTH="32" NAME="s_axi_control" TYPE="SLAVE" VLNV="xilinx.com:interface:aximm:1.0"><PARAMETERS/><PORTMAPS/></BUSINTERFACE>
      </BUSINTERFACES>
    </MODULE>
  </MODULES>
</EDKSYSTEM>
""".format(name=quoteattr(manifest.name), ps_params=ps_params, ip=ip_name, bus=quoteattr(bus),
           base=base, high=base + size - 1, modtype=ip["vlnv"].split(":")[2], vlnv=ip["vlnv"],
           size=size, regs=regs, ip_params=ip_params, hz=int(mhz * 1e6))
