% MNIST addition read by a faulty sensor: when the learnable fact `faulty` fires, the sensor reports one
% more than the sum. Its probability has no initial value: training starts it at a seeded random one and
% learns it from the readings alone (tasks/mnist_faulty_sensor.yaml).
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).
t(_) :: faulty.

reading(X, Y, Z) :- digit(X, A), digit(Y, B), \+ faulty, Z is A + B.
reading(X, Y, Z) :- digit(X, A), digit(Y, B), faulty, Z is A + B + 1.
