namespace FinQLoRA.Tests.Training;

/// <summary>
/// An independent, plain-double transcription of 0/1 Adam for ONE parameter vector, straight from
/// docs/reference-algorithms.md §4 (phases 1–7) and DeepSpeed's compressed_allreduce with one rank
/// (padding to a multiple of 8). It shares no code with the optimizer; tests compare the two.
/// </summary>
internal sealed class ZeroOneAdamScalarReference(double[] initial, double beta1, double beta2, double eps, double weightDecay,
    long varFreezeStep, long varUpdateScaler, long localStepScaler, long localStepClipper)
{
    public double[] P { get; } = (double[])initial.Clone();
    public double[] M { get; } = new double[initial.Length];
    public double[] V { get; } = new double[initial.Length];
    public double[] U { get; } = new double[initial.Length];

    public long VarInterval { get; private set; } = 1;
    public long LocalStepInterval { get; private set; } = 1;

    private readonly int _padded = (initial.Length + 7) / 8 * 8;
    private double[] _workerError = new double[(initial.Length + 7) / 8 * 8];
    private double[] _serverError = new double[(initial.Length + 7) / 8 * 8];
    private long _step, _varCounter, _localStepCounter;
    private double _lrs;
    private bool _frozen, _errorsReset;

    /// <summary>One step; returns what kind of step it was: init, variance, one-bit, local or local+sync.</summary>
    public string Step(double[] g, double lr)
    {
        int n = P.Length;
        _step++;
        if (_step == 1) return "init"; // DeepSpeed's first step() only sets up buffers

        string kind;
        bool frozen = _frozen;
        bool sync = false;
        if (!frozen)
        {
            if (_step % VarInterval == 0)
            {
                kind = "variance"; // phase 1
                for (int i = 0; i < n; i++)
                {
                    V[i] = beta2 * V[i] + (1 - beta2) * g[i] * g[i];
                    M[i] = beta1 * M[i] + (1 - beta1) * g[i];
                }
            }
            else
            {
                kind = "one-bit"; // phase 2
                double[] compressed = CompressedAllReduce(g);
                for (int i = 0; i < n; i++) M[i] = beta1 * M[i] + (1 - beta1) * compressed[i];
            }
        }
        else
        {
            kind = "local"; // phase 5
            for (int i = 0; i < n; i++) M[i] = beta1 * M[i] + (1 - beta1) * g[i];
            _lrs += lr;
        }

        for (int i = 0; i < n; i++)
        {
            double d = M[i] / (Math.Sqrt(V[i]) + eps) + weightDecay * P[i];
            P[i] -= lr * d;
            if (frozen) U[i] -= lr * d;
        }

        if (frozen && _step % LocalStepInterval == 0)
        {
            sync = true; // phase 6
            kind = "local+sync";
            double[] scaled = new double[n];
            for (int i = 0; i < n; i++)
            {
                P[i] -= U[i];
                scaled[i] = U[i] * (Math.Sqrt(V[i]) + eps);
            }
            double[] averaged = CompressedAllReduce(scaled);
            for (int i = 0; i < n; i++)
            {
                M[i] = -averaged[i] / _lrs;
                P[i] += averaged[i] / (Math.Sqrt(V[i]) + eps);
                U[i] = 0;
            }
        }

        if (!frozen)
        {
            if (_step % VarInterval == 0 && ++_varCounter == varUpdateScaler) // phase 3
            {
                _varCounter = 0;
                VarInterval *= 2;
            }
        }
        else
        {
            if (sync) _lrs = 0;
            if (++_localStepCounter == localStepScaler) // phase 7
            {
                _localStepCounter = 0;
                LocalStepInterval = Math.Min(localStepClipper, 2 * LocalStepInterval);
            }
        }

        if (_step > varFreezeStep) _frozen = true; // phase 4
        if (_frozen && !_errorsReset)
        {
            _workerError = new double[_padded];
            _serverError = new double[_padded];
            _errorsReset = true;
        }
        return kind;
    }

    /// <summary>compressed_allreduce with world size 1: worker compression, then server compression of the mean.</summary>
    private double[] CompressedAllReduce(double[] values)
    {
        double[] x = new double[_padded];
        for (int i = 0; i < values.Length; i++) x[i] = values[i];
        for (int i = 0; i < _padded; i++) x[i] += _workerError[i];
        double[] c = Compress(x);
        for (int i = 0; i < _padded; i++) _workerError[i] = x[i] - c[i];

        double[] y = new double[_padded];
        for (int i = 0; i < _padded; i++) y[i] = c[i] / 1 + _serverError[i];
        double[] result = Compress(y);
        for (int i = 0; i < _padded; i++) _serverError[i] = y[i] - result[i];
        return result[..values.Length];
    }

    /// <summary>scale·sign(x) with scale = ‖x‖₂/√N and sign(0) = +1.</summary>
    private static double[] Compress(double[] x)
    {
        double scale = Math.Sqrt(x.Sum(v => v * v)) / Math.Sqrt(x.Length);
        return x.Select(v => v >= 0 ? scale : -scale).ToArray();
    }
}
