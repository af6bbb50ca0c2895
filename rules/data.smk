DATA_TARGETS = []


rule probe:
    output:
        f"{W}/probe.txt",
    log:
        log_path("probe"),
    resources:
        **res("probe"),
    threads: nthreads("probe")
    shell:
        "echo ok > {output} 2> {log}"
