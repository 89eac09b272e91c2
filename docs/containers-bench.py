#!/usr/bin/env python3
# Detached containers side by side with docker: run -d, exec true, stop of a TERM-handling
# payload, ps -a with 50 containers, compose up -d of three services (when docker-compose is
# installed), and the idle supervisor's RSS. Leaves nothing behind.
import subprocess, time, statistics, os
import sys
# usage: python3 docs/containers-bench.py KILN ROOTFS_DIR   (docker must have busybox:test)
K = os.path.abspath(sys.argv[1]); ROOTFS = sys.argv[2]; R = "/tmp/kiln-containers-bench"
subprocess.run(["rm","-rf",R]); subprocess.run([K,"--root",R,"import",ROOTFS,"bb:1"],check=True,capture_output=True)
kiln=lambda *a: [K,"--root",R,*a]
dock=lambda *a: ["docker",*a]
# The TERM handler runs as soon as the signal arrives (`wait` is interrupted; a foreground
# `sleep` would delay it by up to its length, for both tools alike).
TERM="trap 'exit 0' TERM; sleep 1000 & wait"
def t(cmd, cwd=None):
    s=time.perf_counter(); subprocess.run(cmd,check=True,capture_output=True,cwd=cwd); return time.perf_counter()-s
N=9  # samples per figure (the first container of run -d stays up for exec)
def med(f,n=N): return statistics.median([f(i) for i in range(n)])
res={}
for who,c,img,extra in [("kiln",kiln,"bb:1",[]),("docker",dock,"busybox:test",["--network","none"])]:
    def rund(i):
        name=f"lcb-{who}-{i}"
        d=t(c("run","-d",*extra,"--name",name,img,"sh","-c",TERM))
        return d
    r=[rund(i) for i in range(N)]
    e=med(lambda i: t(c("exec",f"lcb-{who}-0","true")))
    st=statistics.median([t(c("stop",f"lcb-{who}-{i}")) for i in range(1,N)])
    if who=="kiln":
        pid=int(subprocess.run(["pgrep","-f","__kiln-supervise "+R],capture_output=True,text=True).stdout.split()[0])
        time.sleep(1)
        res["rss"]=", ".join(l.split()[0] + " " + l.split()[1] + " kB" for l in open(f"/proc/{pid}/status")
                            if l.startswith(("VmRSS", "RssAnon", "RssFile")))
    for i in range(N): subprocess.run(c("rm","-f",f"lcb-{who}-{i}"),capture_output=True)
    for i in range(50): subprocess.run(c("create",*extra,"--name",f"lcp-{who}-{i}",img,"true"),check=True,capture_output=True)
    p=med(lambda i: t(c("ps","-a")))
    for i in range(50): subprocess.run(c("rm","-f",f"lcp-{who}-{i}"),capture_output=True)
    res[who]=dict(run_d=statistics.median(r),exec_true=e,stop=st,ps50=p)
# compose up -d of three services (docker-compose, with network_mode: none as this machine's
# rule asks; kiln puts the project on its own loopback network)
import shutil, tempfile
if shutil.which("docker-compose"):
    def project(image, extra):
        d=tempfile.mkdtemp(prefix="kiln-compose-bench-")
        with open(os.path.join(d,"compose.yaml"),"w") as f:
            f.write("services:\n")
            for svc in "abc":
                f.write(f"  {svc}:\n    image: {image}\n    command: [\"sh\", \"-c\", \"{TERM}\"]\n{extra}")
        return d
    up={}
    for who,c,d in [("kiln",lambda *a: kiln("compose","-p","cbk",*a),project("bb:1","")),
                    ("docker",lambda *a: ["docker-compose","-p","cbd",*a],project("busybox:test","    network_mode: none\n"))]:
        ts=[]
        for i in range(5):
            ts.append(t(c("up","-d"),cwd=d))
            subprocess.run(c("down"),check=True,capture_output=True,cwd=d)
        up[who]=statistics.median(ts)
        shutil.rmtree(d)
    res["kiln"]["compose_up"]=up["kiln"]; res["docker"]["compose_up"]=up["docker"]
print(res)
for k in [k for k in ["run_d","exec_true","stop","ps50","compose_up"] if k in res["kiln"]]:
    a,b=res["kiln"][k],res["docker"][k]; print(f"| {k} | {a:.3f} s | {b:.3f} s | {a/b:.2f} |")
subprocess.run(["rm", "-rf", R])
