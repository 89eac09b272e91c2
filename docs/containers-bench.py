#!/usr/bin/env python3
# Detached containers side by side with docker: run -d, exec true, stop of a TERM-handling
# payload, ps -a with 50 containers, and the idle supervisor's RSS. Leaves nothing behind.
import subprocess, time, statistics, os
import sys
# usage: python3 docs/containers-bench.py KILN ROOTFS_DIR   (docker must have busybox:test)
K = sys.argv[1]; ROOTFS = sys.argv[2]; R = "/tmp/kiln-containers-bench"
subprocess.run(["rm","-rf",R]); subprocess.run([K,"--root",R,"import",ROOTFS,"bb:1"],check=True,capture_output=True)
kiln=lambda *a: [K,"--root",R,*a]
dock=lambda *a: ["docker",*a]
TERM="trap 'exit 0' TERM; while true; do sleep 0.1; done"
def t(cmd):
    s=time.perf_counter(); subprocess.run(cmd,check=True,capture_output=True); return time.perf_counter()-s
def med(f,n=5): return statistics.median([f(i) for i in range(n)])
res={}
for who,c,img,extra in [("kiln",kiln,"bb:1",[]),("docker",dock,"busybox:test",["--network","none"])]:
    def rund(i):
        name=f"lcb-{who}-{i}"
        d=t(c("run","-d",*extra,"--name",name,img,"sh","-c",TERM))
        return d
    r=[rund(i) for i in range(5)]
    e=med(lambda i: t(c("exec",f"lcb-{who}-0","true")))
    st=statistics.median([t(c("stop",f"lcb-{who}-{i}")) for i in range(1,5)])
    if who=="kiln":
        pid=int(subprocess.run(["pgrep","-f","__kiln-supervise "+R],capture_output=True,text=True).stdout.split()[0])
        time.sleep(1)
        res["rss"]=", ".join(l.split()[0] + " " + l.split()[1] + " kB" for l in open(f"/proc/{pid}/status")
                            if l.startswith(("VmRSS", "RssAnon", "RssFile")))
    for i in range(5): subprocess.run(c("rm","-f",f"lcb-{who}-{i}"),capture_output=True)
    for i in range(50): subprocess.run(c("create",*extra,"--name",f"lcp-{who}-{i}",img,"true"),check=True,capture_output=True)
    p=med(lambda i: t(c("ps","-a")))
    for i in range(50): subprocess.run(c("rm","-f",f"lcp-{who}-{i}"),capture_output=True)
    res[who]=dict(run_d=statistics.median(r),exec_true=e,stop=st,ps50=p)
print(res)
for k in ["run_d","exec_true","stop","ps50"]:
    a,b=res["kiln"][k],res["docker"][k]; print(f"| {k} | {a:.3f} s | {b:.3f} s | {a/b:.2f} |")
subprocess.run(["rm", "-rf", R])
