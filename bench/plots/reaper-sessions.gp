# Reaper: time to reap every session of one deleted router, against the
# number of sessions; OpenZiti's eventual cleanup (500/s) as the anchor.
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "reaper: one router deleted, time until all its sessions are closed"
set xlabel "sessions on the router (log scale)"
set ylabel "seconds (log scale)"
set logscale xy
set xrange [5000:2000000]
set format x "%.0s%c"
set grid
set key top left box opaque
f = data.'/reaper_sessions.dat'
plot f using 1:2 with linespoints lw 2 pt 7 title "edgeplane-reaper (job start to end)", \
     f using 1:4 with lines lw 1 dt 2 title "OpenZiti anchor: 1,000 every 2 s"
