# Terminators: cold-start time against the fleet size (routers x 10 services).
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "terminators: cold start against routers (10 services each, every transition fsynced)"
set xlabel "routers (log scale)"
set ylabel "seconds (log scale)"
set y2label "terminators established per second"
set logscale x
set xrange [500:50000]
set logscale y
set ytics nomirror
set y2tics
set y2range [0:*]
set format x "%.0s%c"
set grid
set key below
f = data.'/terminators_routers.dat'
plot f using 1:3 with linespoints lw 2 pt 7 title "establish all (s)", \
     f using 1:5 with linespoints lw 2 pt 5 title "reconcile after deleting 10% (s)", \
     f using 1:6 with linespoints lw 2 pt 9 title "restart over the database (s)", \
     f using 1:4 axes x1y2 with linespoints lw 1 dt 2 pt 2 title "established per second (right)"
